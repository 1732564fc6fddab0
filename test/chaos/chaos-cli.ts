// npm run chaos -- --nodes 5 --minutes 10 --seed S [--runs N] [--read-consistency none] [--json out.json]
// Runs fault-injection campaigns on real node processes and prints a summary; exits 1 when a
// check fails (lost acknowledged writes, linearizability violations, crashes, HTTP 500s).
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { runCampaign, runStaleReadDemo, type CampaignResult } from './campaign.js';
import { faultKinds, type FaultKind } from './nemesis.js';
import { closeAgent } from './http-client.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '3' },
    minutes: { type: 'string', default: '2' },
    seed: { type: 'string' },
    runs: { type: 'string', default: '1' },
    'read-consistency': { type: 'string' },
    faults: { type: 'string' },
    'election-timeout-ms': { type: 'string', default: '1000' },
    'heartbeat-ms': { type: 'string', default: '100' },
    'append-clients': { type: 'string' },
    'register-clients': { type: 'string' },
    json: { type: 'string' },
    'snapshot-entries': { type: 'string' },
    'slow-disk-ms': { type: 'string' },
    echo: { type: 'boolean', default: false },
    'stale-read-demo': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  console.log(`usage: npm run chaos -- [--nodes 3|5] [--minutes M] [--seed S] [--runs N]
       [--read-consistency linearizable|leader|none] [--faults kind,kind,...]
       [--election-timeout-ms 1000] [--heartbeat-ms 100] [--append-clients N] [--register-clients N]
       [--json results.json] [--echo]
       [--snapshot-entries N]   nodes snapshot and compact their log every N entries (TIMESTORE_SNAPSHOT_ENTRIES)
       [--slow-disk-ms MS]      what the slow-disk fault adds to each raft.db persist (default 50)
       [--stale-read-demo [--read-consistency none|linearizable]]   the planted stale-read scenario
fault kinds: ${faultKinds.join(', ')}`);
  process.exit(0);
}

const num = (name: string, v: string | undefined): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) {
    console.error(`--${name}: expected a number, got ${v}`);
    process.exit(2);
  }
  return n;
};

const nodes = num('nodes', values.nodes);
const minutes = num('minutes', values.minutes);
const runs = Math.max(1, Math.floor(num('runs', values.runs)));
const seed0 =
  values.seed !== undefined ? Math.floor(num('seed', values.seed)) : Math.floor(Math.random() * 2 ** 31);
// Campaigns read with linearizable by default; the stale-read demo with none (that is its point).
const rc = values['read-consistency'] ?? (values['stale-read-demo'] ? 'none' : 'linearizable');
if (rc !== 'linearizable' && rc !== 'leader' && rc !== 'none') {
  console.error('--read-consistency: expected linearizable, leader or none');
  process.exit(2);
}
let kinds: FaultKind[] | undefined;
if (values.faults) {
  kinds = values.faults.split(',').map((s) => s.trim()) as FaultKind[];
  const bad = kinds.filter((k) => !(faultKinds as readonly string[]).includes(k));
  if (bad.length) {
    console.error(`--faults: unknown kinds ${bad.join(', ')}; known: ${faultKinds.join(', ')}`);
    process.exit(2);
  }
}

const ts = () => new Date().toISOString().slice(11, 19);
const log = (line: string) => console.log(`${ts()} ${line}`);

if (values['stale-read-demo']) {
  const r = await runStaleReadDemo({
    seed: seed0,
    readConsistency: rc === 'linearizable' ? 'linearizable' : 'none',
    log,
  });
  await closeAgent();
  console.log(
    `old leader ${r.oldLeader}, new leader ${r.newLeader}, reads from the old leader ${r.readsFromOldLeader}`,
  );
  console.log(
    `reads with consistency=${rc}; register ops ${r.registers.operations} on ${r.registers.keys} keys: ${r.registers.result}, violations ${r.registers.violations}`,
  );
  for (const rep of r.registers.report) console.log(rep);
  process.exit(0);
}

const results: CampaignResult[] = [];
let interrupted = false;
process.on('SIGINT', () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  log('interrupt: finishing the current run (Ctrl-C again to abort)');
});

for (let i = 0; i < runs && !interrupted; i++) {
  const seed = seed0 + i;
  log(`run ${i + 1}/${runs}: ${nodes} nodes, ${minutes} min, seed ${seed}, reads ${rc}`);
  try {
    const r = await runCampaign({
      nodes,
      durationMs: (minutes * 60_000) / runs,
      seed,
      electionTimeoutMs: num('election-timeout-ms', values['election-timeout-ms']),
      heartbeatMs: num('heartbeat-ms', values['heartbeat-ms']),
      faultKinds: kinds,
      ...(values['slow-disk-ms'] ? { slowDiskMs: num('slow-disk-ms', values['slow-disk-ms']) } : {}),
      ...(values['snapshot-entries']
        ? {
            env: {
              TIMESTORE_SNAPSHOT_ENTRIES: String(num('snapshot-entries', values['snapshot-entries'])),
              TIMESTORE_SNAPSHOT_CATCHUP_ENTRIES: String(
                Math.max(1, Math.floor(num('snapshot-entries', values['snapshot-entries']) / 4)),
              ),
            },
          }
        : {}),
      workload: {
        readConsistency: rc,
        ...(values['append-clients']
          ? { appendClients: num('append-clients', values['append-clients']) }
          : {}),
        ...(values['register-clients']
          ? { registerClients: num('register-clients', values['register-clients']) }
          : {}),
      },
      log,
      echo: values.echo,
    });
    results.push(r);
    log(`run ${i + 1}: ${r.valid ? 'VALID' : 'INVALID'}`);
    for (const p of r.problems) log(`  problem: ${p}`);
  } catch (err) {
    log(`run ${i + 1} aborted: ${String((err as Error).stack ?? err)}`);
    results.push({
      seed,
      nodes,
      minutes: 0,
      faults: {},
      nemesisErrors: [],
      operations: 0,
      registerWritesAcknowledged: 0,
      ok: 0,
      failed: 0,
      unknown: 0,
      serverErrors: {},
      appends: null,
      registers: {
        result: 'unknown',
        keys: 0,
        operations: 0,
        violations: 0,
        undecided: 0,
        extraEntryReads: 0,
        report: [],
        checkMs: 0,
      },
      crashes: [],
      valid: false,
      problems: [`aborted: ${String(err)}`],
    });
  }
}
await closeAgent();

// ---- summary ----
const sum = (f: (r: CampaignResult) => number) => results.reduce((a, r) => a + f(r), 0);
const faults: Record<string, number> = {};
for (const r of results) for (const [k, v] of Object.entries(r.faults)) faults[k] = (faults[k] ?? 0) + v;
const summary = {
  runs: results.length,
  nodes,
  seeds: results.map((r) => r.seed),
  readConsistency: rc,
  minutes: Number(sum((r) => r.minutes).toFixed(2)),
  faults,
  faultsTotal: Object.values(faults).reduce((a, b) => a + b, 0),
  operations: sum((r) => r.operations),
  ok: sum((r) => r.ok),
  failed: sum((r) => r.failed),
  unknown: sum((r) => r.unknown),
  appendsAcknowledged: sum((r) => r.appends?.acknowledged ?? 0),
  registerWritesAcknowledged: sum((r) => r.registerWritesAcknowledged),
  lost: sum((r) => r.appends?.lost ?? 0),
  duplicated: sum((r) => r.appends?.duplicated ?? 0),
  failedPresent: sum((r) => r.appends?.failedPresent ?? 0),
  registerOps: sum((r) => r.registers.operations),
  registerKeys: sum((r) => r.registers.keys),
  linearizabilityViolations: sum((r) => r.registers.violations),
  undecidedKeys: sum((r) => r.registers.undecided),
  serverErrors: results.reduce<Record<string, number>>((acc, r) => {
    for (const [k, v] of Object.entries(r.serverErrors)) acc[k] = (acc[k] ?? 0) + v;
    return acc;
  }, {}),
  invalidRuns: results.filter((r) => !r.valid).length,
};
console.log('\n==== chaos summary ====');
console.log(
  `runs ${summary.runs} (${nodes} nodes, seeds ${summary.seeds.join(',')}), ${summary.minutes} minutes, reads ${rc}`,
);
console.log(
  `faults ${summary.faultsTotal}: ${
    Object.entries(faults)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ') || '-'
  }`,
);
console.log(
  `operations ${summary.operations} (ok ${summary.ok}, failed ${summary.failed}, unknown ${summary.unknown})`,
);
console.log(
  `appends acknowledged ${summary.appendsAcknowledged}, lost ${summary.lost}, duplicated ${summary.duplicated}, failed-but-present ${summary.failedPresent}`,
);
console.log(`register writes acknowledged ${summary.registerWritesAcknowledged}`);
console.log(
  `register ops ${summary.registerOps} on ${summary.registerKeys} keys, linearizability violations ${summary.linearizabilityViolations}, undecided keys ${summary.undecidedKeys}`,
);
console.log(`5xx responses: ${JSON.stringify(summary.serverErrors)}`);
console.log(`invalid runs: ${summary.invalidRuns}`);
if (values.json) writeFileSync(values.json, JSON.stringify({ summary, results }, null, 2));
process.exit(summary.invalidRuns > 0 ? 1 : 0);
