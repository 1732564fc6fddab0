// The node's log destination (createLogger's default, stdout): a process whose log reader went
// away exits when told to, instead of hanging in exit retrying the write (pino's asynchronous
// default destination did: sonic-boom's flushSync retries EPIPE forever).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const fixture = fileURLToPath(new URL('./fixtures/log-until-sigterm.ts', import.meta.url));

test('a process whose log reader is gone exits on SIGTERM instead of hanging', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const first = await new Promise<string>((resolve) =>
    child.stdout.once('data', (b: Buffer) => resolve(b.toString())),
  );
  assert.match(first, /"msg":"started"/);
  child.stdout.destroy(); // the reader goes away: the child's next writes get EPIPE
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  const r = await exited;
  clearTimeout(timer);
  assert.deepEqual(r, { code: 0, signal: null }, `the child should exit 0 by itself; stderr: ${stderr}`);
});
