// CI campaign: thousands of seeds of mixed faults (each seed draws its own fault profile and Raft
// knobs), every invariant checked after every step, liveness checked after healing.
// A failure names its seed; replay it with: npm run sim -- --seed <seed> --nodes <n> --trace
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSim } from './sim.js';
import { seedNodes } from './sim-config.js';

export const CI_SEEDS = 2000;
export const CI_FAULT_TICKS = 500;
const CHUNK = 500;

for (let start = 1; start <= CI_SEEDS; start += CHUNK) {
  const end = Math.min(CI_SEEDS, start + CHUNK - 1);
  test(`simulator: seeds ${start}..${end} of mixed faults keep every invariant`, () => {
    const failures: string[] = [];
    for (let seed = start; seed <= end; seed++) {
      const nodes = seedNodes(seed);
      const r = runSim({ seed, nodes, faultTicks: CI_FAULT_TICKS });
      if (!r.ok) {
        failures.push(
          `seed ${seed} (${nodes} nodes) at unit ${r.at}: ${r.violation}\n` +
            `  replay: npm run sim -- --seed ${seed} --nodes ${nodes} --ticks ${CI_FAULT_TICKS} --trace`,
        );
      }
    }
    assert.deepEqual(failures, []);
  });
}

test('simulator: a seed replays exactly', () => {
  const a = runSim({ seed: 4242, nodes: 5, faultTicks: 200, trace: true });
  const b = runSim({ seed: 4242, nodes: 5, faultTicks: 200, trace: true });
  assert.equal(a.ok, true, a.violation);
  assert.deepEqual(a.stats, b.stats);
  assert.deepEqual(a.trace, b.trace);
  assert.ok(a.stats.elections > 0 && a.stats.acked > 0);
});

test('simulator: covers 1 to 7 nodes, crashes, partitions, snapshots, membership changes and transfers', () => {
  const totals = { crashes: 0, snapshotsSent: 0, confChanges: 0, transfers: 0, reads: 0 };
  const sizes = new Set<number>();
  for (let seed = 1; seed <= 60; seed++) {
    const nodes = seedNodes(seed);
    sizes.add(nodes);
    const r = runSim({ seed, nodes, faultTicks: CI_FAULT_TICKS });
    assert.equal(r.ok, true, r.violation);
    for (const k of Object.keys(totals) as Array<keyof typeof totals>) totals[k] += r.stats[k];
  }
  assert.deepEqual([...sizes].sort(), [1, 2, 3, 4, 5, 6, 7]);
  for (const [k, v] of Object.entries(totals)) assert.ok(v > 0, `no ${k} in 60 seeds`);
});

/** 300 seeds over 1-7 nodes with one kind of hint on: no violation, and the hints did something. */
function hintCampaign(kind: 'commitHints' | 'durableHints', stat: 'hints' | 'durableHints'): void {
  let moved = 0;
  const failures: string[] = [];
  for (let seed = 1; seed <= 300; seed++) {
    const nodes = seedNodes(seed);
    const r = runSim({ seed, nodes, faultTicks: CI_FAULT_TICKS, [kind]: true });
    if (!r.ok) failures.push(`seed ${seed} (${nodes} nodes) at unit ${r.at}: ${r.violation}`);
    moved += r.stats[stat];
  }
  assert.deepEqual(failures, []);
  assert.ok(moved > 100, `only ${moved} ${kind} moved a commit index in 300 seeds`);
}

test('simulator: commit hints (a forwarded write’s answer) keep every invariant', () => {
  hintCampaign('commitHints', 'hints');
});

test('simulator: durable hints (a forward answered once durable on the leader) keep every invariant', () => {
  hintCampaign('durableHints', 'durableHints');
});
