// The `timestore` CLI as a process: --help, --version, errors and exit codes, and the REST client
// subcommands (write, query, status) against a real node.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  cliArgs,
  freePort,
  repoRoot,
  spawnProcess,
  startNodeProcess,
  tempDir,
  waitForExit,
  type NodeProcess,
} from '../helpers/index.js';

async function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; out: string }> {
  const p = spawnProcess({ args: cliArgs(...args), env, name: `timestore ${args[0] ?? ''}`, cwd: repoRoot });
  const exit = await waitForExit(p, 60_000);
  return { code: exit.code, out: p.output() };
}

describe('timestore CLI', () => {
  it('--help lists the subcommands', async () => {
    const r = await run(['--help']);
    assert.equal(r.code, 0, r.out);
    for (const c of ['node', 'write', 'query', 'status']) assert.match(r.out, new RegExp(`\\n  ${c}\\s`));
  });

  it('--version prints package.json version', async () => {
    const r = await run(['--version']);
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    assert.equal(r.code, 0);
    assert.equal(r.out.trim(), pkg.version);
  });

  it('node --help documents every flag and its variable', async () => {
    const r = await run(['node', '--help']);
    assert.equal(r.code, 0, r.out);
    for (const f of [
      'id',
      'listen',
      'data-dir',
      'peers',
      'join',
      'advertise',
      'election-timeout-ms',
      'heartbeat-ms',
      'max-body-bytes',
      'log-level',
    ]) {
      assert.match(r.out, new RegExp(`--${f}\\b`));
      assert.match(r.out, new RegExp(`TIMESTORE_${f.toUpperCase().replace(/-/g, '_')}\\b`));
    }
  });

  it('an unknown command or a bad flag exits 2 with a message naming it', async () => {
    const a = await run(['frobnicate']);
    assert.equal(a.code, 2);
    assert.match(a.out, /unknown command "frobnicate"/);
    const b = await run(['node', '--id', 'n1', '--listen', 'nowhere']);
    assert.equal(b.code, 2);
    assert.match(b.out, /--listen: expected host:port/);
    const c = await run(['node', '--id', 'n1'], { TIMESTORE_LOG_LEVEL: 'shouty' });
    assert.equal(c.code, 2);
    assert.match(c.out, /TIMESTORE_LOG_LEVEL/);
  });
});

describe('timestore node start-up errors', () => {
  it('a taken --listen port exits 2 naming the flag', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (blocker.address() as AddressInfo).port;
      const r = await run(['node', '--id', 'n1', '--listen', `127.0.0.1:${port}`, '--data-dir', tempDir()]);
      assert.equal(r.code, 2, r.out);
      assert.match(r.out, new RegExp(`--listen 127\\.0\\.0\\.1:${port}: cannot listen \\(EADDRINUSE`));
    } finally {
      blocker.close();
    }
  });
});

describe('REST client subcommands', () => {
  let node: NodeProcess;
  before(async () => {
    node = await startNodeProcess({ id: 'n1' });
  });
  after(async () => {
    await node?.stop();
  });

  it('write, then query and status', async () => {
    const w = await run([
      'write',
      '--url',
      node.url,
      '--device',
      'cli-1',
      '--value',
      '21.5',
      '--timestamp',
      '2024-05-01T00:00:00Z',
      '--tags',
      'site=north',
    ]);
    assert.equal(w.code, 0, w.out);
    assert.equal(JSON.parse(w.out).deviceId, 'cli-1');
    const w2 = await run(
      ['write', '--device', 'cli-1', '--value', '22', '--timestamp', '2024-05-01T00:01:00Z'],
      { TIMESTORE_URL: node.url },
    );
    assert.equal(w2.code, 0, w2.out);

    const q = await run(['query', '--url', node.url, '--device', 'cli-1', '--limit', '1', '--all']);
    assert.equal(q.code, 0, q.out);
    const lines = q.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { value: number; tags?: Record<string, string> });
    assert.deepEqual(
      lines.map((l) => l.value),
      [21.5, 22],
    );
    assert.deepEqual(lines[0]!.tags, { site: 'north' });

    const s = await run(['status', '--url', node.url]);
    assert.equal(s.code, 0, s.out);
    assert.equal(JSON.parse(s.out).nodeId, 'n1');
  });

  it('a rejected write exits 1 and prints the problem fields', async () => {
    const r = await run([
      'write',
      '--url',
      node.url,
      '--device',
      'x',
      '--value',
      '1',
      '--timestamp',
      'yesterday',
    ]);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /HTTP 400/);
    assert.match(r.out, /timestamp: /);
  });

  it('an unreachable node exits 1 with the connection error', async () => {
    const r = await run(['status', '--url', `http://127.0.0.1:${await freePort()}`]);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /ECONNREFUSED/);
  });
});
