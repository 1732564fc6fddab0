// node --import tsx test/fuzz/fuzz-cli.ts [--url http://127.0.0.1:5001] [--runs-generated 50] [--runs-mutated 150] [--seed S] [--json out.json]
// Without --url it starts its own node (a one-member Raft cluster, so the peer endpoints are
// mounted) on a free port with a fresh data dir. Prints counts by kind and status, and failures.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { freePort, startNodeProcess, type NodeProcess } from '../helpers/index.js';
import { fuzzNode, slowBodies } from './openapi-fuzz.js';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    'runs-generated': { type: 'string', default: '50' },
    'runs-mutated': { type: 'string', default: '150' },
    seed: { type: 'string' },
    'max-body-bytes': { type: 'string', default: String(4 * 1024 * 1024) },
    json: { type: 'string' },
  },
});

let node: NodeProcess | null = null;
let url = values.url;
if (!url) {
  const port = await freePort();
  node = await startNodeProcess({
    port,
    // A short body timeout, as in fuzz.test.ts, so the stalled-client checks end in seconds.
    args: ['--peers', `n1=http://127.0.0.1:${port}`, '--body-timeout-ms', '5000'],
    env: { TIMESTORE_TEST_LOG_LEVEL: 'warn' },
  });
  url = node.url;
}
const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
console.log(`fuzzing ${url} (seed ${seed})`);
let code = 0;
try {
  const stats = await fuzzNode({
    baseUrl: url,
    runsGenerated: Number(values['runs-generated']),
    runsMutated: Number(values['runs-mutated']),
    maxBodyBytes: Number(values['max-body-bytes']),
    seed,
    log: (l) => console.log(l),
  });
  const slow = await slowBodies(url);
  console.log(
    JSON.stringify(
      {
        seed,
        requests: stats.requests + slow.requests,
        stateChecks: stats.stateChecks,
        byKind: stats.byKind,
        byStatus: stats.byStatus,
        byOperation: stats.byOperation,
      },
      null,
      1,
    ),
  );
  const failures = [
    ...stats.failures.map(
      (f) =>
        `${f.op} [${f.kind}] ${f.method} ${f.url} body=${JSON.stringify(f.bodyPrefix.slice(0, 120))}: ${f.problem}`,
    ),
    ...slow.failures,
  ];
  const byKind: Record<string, number> = {};
  for (const a of stats.accepted) byKind[`${a.op} ${a.kind}`] = (byKind[`${a.op} ${a.kind}`] ?? 0) + 1;
  console.log(`certainly-invalid input accepted (2xx): ${stats.accepted.length} ${JSON.stringify(byKind)}`);
  for (const a of stats.accepted.slice(0, 10))
    console.log(
      `  ${a.op} [${a.kind}] body=${JSON.stringify(a.bodyPrefix.slice(0, 100))}: ${a.problem.slice(0, 200)}`,
    );
  console.log(`failures: ${failures.length}`);
  for (const f of failures) console.log(`  ${f}`);
  if (node && !node.proc.running) {
    console.log(`the node exited: ${node.describe()}`);
    code = 1;
  }
  if (values.json) writeFileSync(values.json, JSON.stringify({ seed, stats, slow }, null, 2));
  if (failures.length) code = 1;
} finally {
  if (node) await node.stop();
}
process.exit(code);
