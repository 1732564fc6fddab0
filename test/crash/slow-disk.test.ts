// The slow-disk fault of the chaos nemesis, on a real node: raft.before-persist=sleep:MS gated by a
// file makes every raft.db persist take at least MS more while the file exists, and nothing
// before. (A lower bound that holds by construction, not a wall-clock threshold.)
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, get, post, startNodeProcess, tempDir, type NodeProcess } from '../helpers/index.js';

const nodes: NodeProcess[] = [];
after(async () => {
  await Promise.all(nodes.map((n) => n.kill().catch(() => {})));
});

async function persistHistogram(n: NodeProcess): Promise<{ count: number; sum: number }> {
  const text = (await get(`${n.url}/metrics`)).text;
  const read = (k: string) =>
    Number(
      new RegExp(`^timestore_raft_persist_duration_seconds_${k}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(
        text,
      )?.[1] ?? NaN,
    );
  return { count: read('count'), sum: read('sum') };
}

async function writes(n: NodeProcess, k: number): Promise<void> {
  for (let i = 0; i < k; i++) {
    const r = await post(`${n.url}/api/timeseries`, {
      deviceId: 'slow',
      timestamp: new Date(1_700_000_000_000 + i).toISOString(),
      value: i,
    });
    assert.equal(r.status, 201, r.text);
  }
}

test('a gated sleep at raft.before-persist slows raft.db persists only while the gate file exists', async () => {
  const dir = tempDir('timestore-slowdisk-');
  const gate = join(dir, 'slow-disk');
  const port = await freePort();
  const n = await startNodeProcess({
    id: 'n1',
    port,
    args: ['--peers', `n1=http://127.0.0.1:${port}`],
    env: { TIMESTORE_FAILPOINTS: 'raft.before-persist=sleep:30', TIMESTORE_FAILPOINTS_GATE: gate },
    readyPath: '/readyz',
  });
  nodes.push(n);
  await writes(n, 5);
  assert.doesNotMatch(n.output(), /failpoint raft\.before-persist fired/);
  const before = await persistHistogram(n);
  writeFileSync(gate, '');
  await writes(n, 5);
  rmSync(gate);
  const slow = await persistHistogram(n);
  assert.match(n.output(), /failpoint raft\.before-persist fired: sleep 30 ms/);
  const persists = slow.count - before.count;
  assert.ok(persists >= 5, `persists while slow: ${persists}`);
  assert.ok(
    (slow.sum - before.sum) / persists >= 0.03,
    `mean persist while slow: ${(slow.sum - before.sum) / persists} s`,
  );
});
