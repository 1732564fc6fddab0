// Long simulator campaigns and exact replays.
//   npm run sim -- --seeds 10000 --nodes 5            # seeds 1..10000, 5 initial voters
//   npm run sim -- --seed 4242 --nodes 5 --trace      # replay one seed with its event trace
// Options: --start S (first seed), --ticks T (fault ticks per seed), --nodes K (0 = random 1..7 per seed),
//          --bug NAME (plant a RaftBugs switch), --no-durability-check, --stop (stop at first failure),
//          --knobs JSON / --profile JSON (override the per-seed draw, e.g. --knobs '{"preVote":false}').
import { runSim } from './sim.js';
import type { FaultProfile, RaftKnobs } from './sim.js';
import type { RaftBugs } from '../../src/raft/index.js';
import { seedNodes } from './sim-config.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const flag = (name: string) => process.argv.includes(`--${name}`);

const single = arg('seed');
const start = Number(single ?? arg('start') ?? 1);
const count = single !== undefined ? 1 : Number(arg('seeds') ?? 100);
const nodesArg = Number(arg('nodes') ?? 0);
const ticks = Number(arg('ticks') ?? 300);
const bug = arg('bug');
const trace = flag('trace');
const bugs: RaftBugs | undefined = bug ? { [bug]: true } : undefined;

let failed = 0;
const t0 = performance.now();
let lastReport = t0;
for (let s = start; s < start + count; s++) {
  const nodes = nodesArg > 0 ? nodesArg : seedNodes(s);
  const tm = arg('trace-messages');
  const knobs = arg('knobs') ? (JSON.parse(arg('knobs')!) as Partial<RaftKnobs>) : undefined;
  const profile = arg('profile') ? (JSON.parse(arg('profile')!) as Partial<FaultProfile>) : undefined;
  const r = runSim({
    seed: s,
    nodes,
    faultTicks: ticks,
    bugs,
    trace,
    traceMessages: tm ? Number(tm) : undefined,
    knobs,
    profile,
    checkSendDurability: !flag('no-durability-check'),
  });
  if (!r.ok) {
    failed++;
    console.log(`FAIL seed=${s} nodes=${nodes} at=${r.at}: ${r.violation}`);
    console.log(
      `  replay: npm run sim -- --seed ${s} --nodes ${nodes} --ticks ${ticks}${bug ? ` --bug ${bug}` : ''} --trace`,
    );
    if (trace) for (const line of r.trace.slice(-Number(arg('trace-tail') ?? 200))) console.log(`  ${line}`);
    if (flag('stop')) break;
  } else if (trace) {
    for (const line of r.trace) console.log(`  ${line}`);
    console.log(`ok seed=${s} ${JSON.stringify(r.stats)}`);
    console.log(`profile ${JSON.stringify(r.profile)} knobs ${JSON.stringify(r.knobs)}`);
  }
  const now = performance.now();
  if (now - lastReport > 2000) {
    lastReport = now;
    const done = s - start + 1;
    console.log(`${done}/${count} seeds, ${failed} failed, ${((now - t0) / done).toFixed(1)} ms/seed`);
  }
}
const dt = performance.now() - t0;
console.log(
  `done: ${count} seeds, ${failed} failed, ${(dt / 1000).toFixed(1)} s (${(dt / count).toFixed(1)} ms/seed)`,
);
process.exit(failed > 0 ? 1 : 0);
