// The failpoint module itself: parsing TIMESTORE_FAILPOINTS, when an armed point fires, that every
// documented failpoint has exactly one call site in src/, and that a node refuses to start with a
// failpoint name it does not know.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  FAILPOINTS,
  Failpoints,
  parseFailpoints,
  parsePlantedBug,
  type FailpointEffects,
} from '../../src/node/failpoints.js';
import { cliArgs, repoRoot, spawnProcess, tempDir, waitForExit } from '../helpers/index.js';

test('parseFailpoints reads NAME=ACTION[@N][~P] entries', () => {
  assert.deepEqual(parseFailpoints(''), []);
  assert.deepEqual(parseFailpoints(' apply.mid-batch=crash@3 , raft.before-persist=sleep:40~0.5 '), [
    { name: 'apply.mid-batch', action: { kind: 'crash' }, from: 3, probability: 1 },
    { name: 'raft.before-persist', action: { kind: 'sleep', ms: 40 }, from: 1, probability: 0.5 },
  ]);
});

test('parseFailpoints names the bad entry and what was expected', () => {
  assert.throws(
    () => parseFailpoints('snapshot.mid-cpy=crash'),
    /unknown failpoint "snapshot\.mid-cpy"; known: snapshot\.mid-copy, /,
  );
  assert.throws(
    () => parseFailpoints('apply.mid-batch=explode'),
    /"apply\.mid-batch=explode" is not NAME=ACTION/,
  );
  assert.throws(() => parseFailpoints('apply.mid-batch'), /is not NAME=ACTION/);
  assert.throws(
    () => parseFailpoints('apply.mid-batch=crash,apply.mid-batch=sleep:5'),
    /given more than once/,
  );
  assert.throws(() => parseFailpoints('apply.mid-batch=crash@0'), /@N counts hits from 1/);
  assert.throws(() => parseFailpoints('apply.mid-batch=crash~0'), /~P must be above 0/);
  assert.equal(parsePlantedBug(undefined), null);
  assert.equal(parsePlantedBug('apply-no-txn'), 'apply-no-txn');
  assert.throws(
    () => parsePlantedBug('apply-no-tx'),
    /TIMESTORE_TEST_BUG: unknown planted bug "apply-no-tx"; known: apply-no-txn/,
  );
});

function recorder(randoms: number[] = [], gate = { open: true }) {
  const events: string[] = [];
  const effects: FailpointEffects = {
    crash: () => events.push('crash'),
    sleep: (ms) => events.push(`sleep ${ms}`),
    report: (line) =>
      events.push(
        `report ${(JSON.parse(line) as { failpoint: string; hit: number }).failpoint}#${(JSON.parse(line) as { hit: number }).hit}`,
      ),
    random: () => randoms.shift() ?? 0,
    gateOpen: () => gate.open,
  };
  return { events, effects };
}

test('an armed crash fires at exactly the Nth hit, after reporting its name; other points do nothing', () => {
  const { events, effects } = recorder();
  const fp = new Failpoints(parseFailpoints('apply.mid-batch=crash@3'), effects);
  fp.hit('apply.mid-batch');
  fp.hit('snapshot.mid-copy');
  fp.hit('apply.mid-batch');
  assert.deepEqual(events, []);
  fp.hit('apply.mid-batch');
  assert.deepEqual(events, ['report apply.mid-batch#3', 'crash']);
});

test('a sleep fires on every hit from the Nth on, each with probability P (randomness injected)', () => {
  const { events, effects } = recorder([0.1, 0.9, 0.2]);
  const fp = new Failpoints(parseFailpoints('raft.before-persist=sleep:25@2~0.5'), effects);
  for (let i = 0; i < 4; i++) fp.hit('raft.before-persist');
  // hit 1 is before @2; hits 2, 3, 4 draw 0.1 (fires), 0.9 (not), 0.2 (fires); a sleep reports its
  // first firing only (then every 100th), as it may fire on every persist
  assert.deepEqual(events, ['report raft.before-persist#2', 'sleep 25', 'sleep 25']);
});

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('every documented failpoint has exactly one call site in src/, and every call site is documented', () => {
  const sites = new Map<string, string[]>();
  for (const file of sourceFiles(join(repoRoot, 'src'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(/failpoint(?:\?\.|!)?\(\s*'([^']+)'\s*\)/g)) {
      sites.set(m[1]!, [...(sites.get(m[1]!) ?? []), file.slice(repoRoot.length + 1)]);
    }
  }
  for (const name of Object.keys(FAILPOINTS))
    assert.equal(
      sites.get(name)?.length,
      1,
      `failpoint ${name}: call sites ${JSON.stringify(sites.get(name) ?? [])}`,
    );
  for (const name of sites.keys())
    assert.ok(name in FAILPOINTS, `call site of undocumented failpoint ${name}`);
});

test('a node does not start with an unknown failpoint name, and says which names exist', async () => {
  const p = spawnProcess({
    args: cliArgs('node', '--id', 'n1', '--listen', '127.0.0.1:0', '--data-dir', tempDir('timestore-fp-')),
    env: { TIMESTORE_FAILPOINTS: 'snapshot.mid-cpy=crash' },
    cwd: repoRoot,
    name: 'n1',
  });
  const exit = await waitForExit(p, 60_000);
  assert.equal(exit.code, 2, p.describe());
  assert.match(
    p.output(),
    /TIMESTORE_FAILPOINTS: unknown failpoint "snapshot\.mid-cpy"; known: snapshot\.mid-copy/,
  );
});

test('with a gate, rules act only while it is open, and hits while it is closed do not count', () => {
  const gate = { open: false };
  const { events, effects } = recorder([], gate);
  const fp = new Failpoints(parseFailpoints('raft.before-persist=sleep:5@2'), effects);
  fp.hit('raft.before-persist');
  fp.hit('raft.before-persist');
  assert.deepEqual(events, []);
  gate.open = true;
  fp.hit('raft.before-persist'); // hit 1
  fp.hit('raft.before-persist'); // hit 2 fires
  gate.open = false;
  fp.hit('raft.before-persist');
  assert.deepEqual(events, ['report raft.before-persist#2', 'sleep 5']);
});
