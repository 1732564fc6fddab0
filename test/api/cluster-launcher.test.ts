// `timestore cluster` (what `npm start` runs) as a real process: it starts its nodes, they elect a
// leader and serve, and when the launcher is killed with SIGKILL (its exit handler never runs) the
// nodes notice through their IPC channel and shut down instead of running on unsupervised. Linux
// only (the launcher's children are found in /proc); skipped elsewhere.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cliArgs, eventually, get, spawnProcess, tempDir, type TestProcess } from '../helpers/index.js';

const procs: TestProcess[] = [];
after(async () => {
  for (const p of procs) if (p.running) await p.kill();
});

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A base port with `n` free consecutive ports after it (the launcher numbers its nodes so). */
async function freeRange(n: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    let ok = true;
    for (let i = 0; i < n && ok; i++) ok = await portFree(base + i);
    if (ok) return base;
  }
  throw new Error(`no ${n} consecutive free ports found`);
}

/** Pids of the live processes whose parent is `ppid` (Linux /proc). */
function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      // comm may hold spaces and parentheses: the fields after the last ')' are fixed.
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === ppid && fields[0] !== 'Z') out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie (exited, not yet reaped) counts as gone.
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function refused(url: string): Promise<boolean> {
  try {
    await fetch(url, { signal: AbortSignal.timeout(2_000) });
    return false;
  } catch (err) {
    return (err as { cause?: { code?: string } }).cause?.code === 'ECONNREFUSED';
  }
}

test(
  'timestore cluster serves; its nodes shut down when the launcher is SIGKILLed',
  { skip: process.platform !== 'linux' },
  async () => {
    const base = await freeRange(3);
    const dir = tempDir();
    const launcher = spawnProcess({
      name: 'cluster',
      args: cliArgs('cluster', '--nodes', '3', '--base-port', String(base), '--data-dir', dir),
    });
    procs.push(launcher);
    const urls = [0, 1, 2].map((i) => `http://127.0.0.1:${base + i}`);
    await eventually(
      async () => {
        const sts = await Promise.all(urls.map((u) => get(`${u}/raft/status`).then((r) => r.json)));
        return sts.every((s) => s.leaderId && s.leaderId === sts[0].leaderId);
      },
      'the three nodes to agree on a leader',
      60_000,
    );
    const w = await fetch(`${urls[1]}/api/timeseries`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ deviceId: 'launcher', timestamp: '2026-12-03T10:00:00Z', value: 1 }),
    });
    assert.equal(w.status, 201, await w.text());

    const nodePids = childrenOf(launcher.child.pid!);
    assert.equal(nodePids.length, 3, `the launcher's children: ${nodePids.join(', ')}`);
    await launcher.kill();
    // Each node: "parent gone" → graceful shutdown (leadership handed over, SQLite closed) → exit.
    // Exit, not only closed ports: the logger used to hang the exit on its broken stdout pipe.
    await eventually(
      async () => (await Promise.all(urls.map(refused))).every(Boolean) && !nodePids.some(alive),
      `every node (pids ${nodePids.join(', ')}) to exit once its launcher was killed`,
      45_000,
      200,
    );
    assert.match(launcher.output(), /\[n1\].*node listening/);
  },
);
