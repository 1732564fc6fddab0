// ForwardBatcher (src/node/raft/forward-batcher.ts) against a scripted leader: what leaves when,
// in which form, and whose outcome each caller gets. The real path (follower → leader over HTTP)
// is tested in forward-batch.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cancellation } from '../../src/node/cancellation.js';
import { ForwardBatcher, dispatch, type ForwardOutcome } from '../../src/node/raft/forward-batcher.js';

interface Sent {
  leader: string;
  body: unknown;
  commands: number;
  answer(o: ForwardOutcome): void;
  fail(err: Error): void;
}

function scripted(opts?: ConstructorParameters<typeof ForwardBatcher>[1]) {
  const sent: Sent[] = [];
  const b = new ForwardBatcher(
    (leader, body, commands) =>
      new Promise<ForwardOutcome>((resolve, reject) =>
        sent.push({ leader, body: JSON.parse(body), commands, answer: resolve, fail: reject }),
      ),
    opts,
  );
  return { b, sent };
}

const cmd = (i: number) => ({ requestId: `r${i}`, ops: [{ op: 'delete', id: `id-${i}` }] });
const tick = () => new Promise((r) => setImmediate(r));

test('a lone write leaves at once in the single form; writes arriving meanwhile share the next forward', async () => {
  const { b, sent } = scripted({ maxInFlight: 1 });
  const first = b.forward('n1', cmd(0), { timeoutMs: 1000 });
  assert.equal(sent.length, 1);
  assert.deepEqual(sent[0]!.body, { command: cmd(0) });
  const rest = [1, 2, 3].map((i) => b.forward('n1', cmd(i), { timeoutMs: 1000 }));
  assert.equal(sent.length, 1, 'nothing else leaves while one forward is on the wire');
  assert.equal(b.queued, 3);
  sent[0]!.answer({ status: 200, body: { index: 7, points: [] } });
  assert.deepEqual(await first, { status: 200, body: { index: 7, points: [] } });
  await tick();
  assert.equal(sent.length, 2);
  assert.deepEqual(sent[1]!.body, { commands: [cmd(1), cmd(2), cmd(3)] });
  assert.equal(sent[1]!.commands, 3);
  // Each caller gets its own result; a rejected command does not fail the others.
  sent[1]!.answer({
    status: 200,
    body: {
      results: [
        { index: 8, points: [] },
        { type: 'about:blank', title: 'Invalid command', status: 400, detail: 'bad id' },
        { index: 9, points: [] },
      ],
    },
  });
  const outs = await Promise.all(rest);
  assert.deepEqual(
    outs.map((o) => o.status),
    [200, 400, 200],
  );
  assert.equal((outs[1]!.body as { detail: string }).detail, 'bad id');
  assert.equal(b.queued, 0);
});

test('queues are per leader, a whole-batch failure is every command’s outcome, a lost answer rejects each', async () => {
  const { b, sent } = scripted();
  const a0 = b.forward('n1', cmd(0), { timeoutMs: 1000 });
  const c0 = b.forward('n2', cmd(10), { timeoutMs: 1000 });
  assert.equal(sent.length, 2, 'another leader has its own queue');
  const a = [1, 2].map((i) => b.forward('n1', cmd(i), { timeoutMs: 1000 }));
  sent[0]!.answer({ status: 200, body: { index: 1, points: [] } });
  await a0;
  await tick();
  sent[2]!.answer({ status: 421, body: { title: 'Not the leader', leaderId: 'n3' } });
  for (const o of await Promise.all(a)) {
    assert.equal(o.status, 421);
    assert.equal((o.body as { leaderId: string }).leaderId, 'n3');
  }
  const c = [11, 12].map((i) => b.forward('n2', cmd(i), { timeoutMs: 1000 }));
  sent[1]!.fail(new Error('connection refused'));
  await assert.rejects(c0, /connection refused/);
  await tick();
  sent[3]!.fail(new Error('socket hang up'));
  for (const p of c) await assert.rejects(p, /socket hang up/);
});

test('a caller that gives up before its command leaves is dropped from the batch', async () => {
  const { b, sent } = scripted();
  const first = b.forward('n1', cmd(0), { timeoutMs: 1000 });
  // The service's own cancellation (a changed leader); an AbortSignal is tested below.
  const ac = new Cancellation();
  const gaveUp = b.forward('n1', cmd(1), { timeoutMs: 1000, signal: ac.signal });
  const kept = b.forward('n1', cmd(2), { timeoutMs: 1000 });
  ac.abort(new Error('leader changed'));
  await assert.rejects(gaveUp, /leader changed/);
  sent[0]!.answer({ status: 200, body: { index: 1, points: [] } });
  await first;
  await tick();
  assert.deepEqual(sent[1]!.body, { command: cmd(2) }, 'only the command still wanted leaves');
  sent[1]!.answer({ status: 200, body: { index: 2, points: [] } });
  assert.equal((await kept).status, 200);
  // Already aborted: refused without queueing.
  await assert.rejects(
    b.forward('n1', cmd(3), { timeoutMs: 1000, signal: AbortSignal.abort(new Error('gone')) }),
    /gone/,
  );
  assert.equal(sent.length, 2);
});

test('with room in flight, the writes of one loop turn leave together once it ends', async () => {
  const { b, sent } = scripted(); // default: up to 4 in flight
  const ps = [0, 1, 2, 3].map((i) => b.forward('n1', cmd(i), { timeoutMs: 1000 }));
  assert.equal(sent.length, 1, 'the first at once, alone');
  await tick();
  assert.equal(sent.length, 2, 'the other three in one forward, not one each');
  assert.deepEqual(sent[1]!.body, { commands: [cmd(1), cmd(2), cmd(3)] });
  const more = b.forward('n1', cmd(4), { timeoutMs: 1000 });
  await tick();
  assert.deepEqual(sent[2]!.body, { command: cmd(4) }, 'a third forward while two are on the wire');
  sent[0]!.answer({ status: 200, body: { index: 1, points: [] } });
  sent[1]!.answer({ status: 200, body: { results: [{ index: 2 }, { index: 3 }, { index: 4 }] } });
  sent[2]!.answer({ status: 200, body: { index: 5 } });
  assert.deepEqual(
    (await Promise.all([...ps, more])).map((o) => (o.body as { index: number }).index),
    [1, 2, 3, 4, 5],
  );
});

test('batches stay within the command and byte limits and the limit in flight', async () => {
  const { b, sent } = scripted({ maxCommands: 2, maxBytes: 200, maxInFlight: 2 });
  const ps = [0, 1, 2, 3, 4, 5].map((i) => b.forward('n1', cmd(i), { timeoutMs: 1000 }));
  assert.equal(sent.length, 1);
  assert.deepEqual(sent[0]!.body, { command: cmd(0) });
  await tick();
  assert.equal(sent.length, 2, 'two forwards on the wire, no more');
  assert.deepEqual(sent[1]!.body, { commands: [cmd(1), cmd(2)] }, 'at most maxCommands per forward');
  sent[0]!.answer({ status: 200, body: { index: 1, points: [] } });
  await tick();
  assert.deepEqual(sent[2]!.body, { commands: [cmd(3), cmd(4)] });
  sent[1]!.answer({ status: 200, body: { results: [{ index: 2 }, { index: 3 }] } });
  sent[2]!.answer({ status: 200, body: { results: [{ index: 4 }, { index: 5 }] } });
  await tick();
  // A command larger than maxBytes still goes, alone.
  const big = b.forward('n1', { requestId: 'x'.repeat(300), ops: [] }, { timeoutMs: 1000 });
  assert.deepEqual(sent[3]!.body, { command: cmd(5) });
  await tick();
  assert.equal(sent[4]!.commands, 1);
  sent[3]!.answer({ status: 200, body: { index: 6 } });
  sent[4]!.answer({ status: 200, body: { index: 7 } });
  assert.deepEqual(
    (await Promise.all([...ps, big])).map((o) => (o.body as { index: number }).index),
    [1, 2, 3, 4, 5, 6, 7],
  );
});

test('dispatch: an answer that does not fit the batch fails each command with 502, never a wrong result', () => {
  const got: ForwardOutcome[] = [];
  const waiters = [0, 1].map(() => ({ resolve: (o: ForwardOutcome) => got.push(o) }));
  dispatch(waiters, { status: 200, body: { results: [{ index: 1 }] } });
  assert.deepEqual(
    got.map((o) => o.status),
    [502, 502],
  );
  got.length = 0;
  dispatch(waiters, { status: 200, body: { results: [{ index: 1 }, { status: 'x' }] } });
  assert.deepEqual(
    got.map((o) => o.status),
    [200, 502],
  );
});
