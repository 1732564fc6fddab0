// Peer streams (src/node/raft/peer-stream*.ts) against real node processes: a stream's answers are
// the HTTP endpoints' answers (the same good and bad appends and forwards, compared with an
// express-only node), in order when frames are pipelined or arrive a byte at a time; a peer without
// streams, or one that refuses the sender, is spoken to over HTTP instead; frames stay checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { freePort, startNodeProcess } from '../helpers/index.js';
import {
  answersOf,
  appendBody,
  normalize,
  pointId,
  putCommand,
  soloMember,
  stoppedAfter,
  type Answer,
  type Case,
} from './fast-path-compare.js';
import {
  encodeAnswer,
  encodeRequest,
  FrameReader,
  STREAM_PATH,
  STREAM_PROTOCOL,
} from '../../src/node/raft/peer-stream-frames.js';
import { PeerChannel, StreamConnection, StreamRefusedError } from '../../src/node/raft/peer-stream.js';

const nodes = stoppedAfter();
const append = appendBody;
const put = putCommand;
const ID = pointId;

/** `good`: the whole answer must match; otherwise the status and the problem's type and title. */
const cases: (Case & { path: '/raft/append' | '/raft/forward'; good: boolean })[] = [
  { what: 'a stale heartbeat', path: '/raft/append', body: append(), good: true },
  { what: 'an append with a negative term', path: '/raft/append', body: '{"term":-1}', good: false },
  {
    what: 'an append addressed to another node',
    path: '/raft/append',
    body: append({ to: 'zz' }),
    good: false,
  },
  {
    what: 'a forward',
    path: '/raft/forward',
    body: JSON.stringify({ command: put(ID(1), 'r1') }),
    good: true,
  },
  {
    what: 'the same forward again',
    path: '/raft/forward',
    body: JSON.stringify({ command: put(ID(1), 'r1') }),
    good: true,
  },
  {
    what: 'a batch with a bad command in it',
    path: '/raft/forward',
    body: JSON.stringify({ commands: [put(ID(2), 'r2'), put('not-a-uuid', 'r3'), put(ID(4), 'r4', 4)] }),
    good: true,
  },
  {
    what: 'a forward the engine rejects',
    path: '/raft/forward',
    body: JSON.stringify({ command: put('x', 'r5') }),
    good: false,
  },
  { what: 'a forward of neither form', path: '/raft/forward', body: '{}', good: false },
  { what: 'malformed JSON', path: '/raft/forward', body: '{"command":', good: false },
  { what: 'an append that is not JSON', path: '/raft/append', body: '{"term":', good: false },
  {
    what: 'a last forward',
    path: '/raft/forward',
    body: JSON.stringify({ command: put(ID(9), 'r9', 9) }),
    good: true,
  },
];

const kind = (body: string) => {
  const p = JSON.parse(body) as { type?: string; title?: string };
  return `${p.type} ${p.title}`;
};

test('frames: split anywhere, oversized or too short frames are errors', () => {
  const frames = Buffer.concat([encodeRequest(1, '{"a":1}'), encodeRequest(2, 'é'), encodeAnswer(503, '{}')]);
  for (let cut = 0; cut <= frames.length; cut++) {
    const r = new FrameReader(1024, 1);
    const a = r.push(frames.subarray(0, cut));
    const b = r.push(frames.subarray(cut));
    assert.ok(Array.isArray(a) && Array.isArray(b));
    const all = [...a, ...b];
    assert.equal(all.length, 3, `cut at ${cut}`);
    assert.deepEqual([all[0]![0], all[0]!.toString('utf8', 1)], [1, '{"a":1}']);
    assert.deepEqual([all[1]![0], all[1]!.toString('utf8', 1)], [2, 'é']);
    assert.deepEqual([all[2]!.readUInt16BE(0), all[2]!.toString('utf8', 2)], [503, '{}']);
    assert.equal(r.buffered, 0);
  }
  assert.deepEqual(new FrameReader(10, 1).push(encodeRequest(1, 'x'.repeat(20))), {
    error: 'a frame of 21 bytes is over the limit of 10',
  });
  assert.deepEqual(new FrameReader(10, 2).push(Buffer.from([0, 0, 0, 1, 7])), {
    error: 'a frame of 1 bytes is too short',
  });
});

test('a stream answers appends and forwards as the HTTP endpoints do, in order', async () => {
  const fast = await soloMember(nodes, 'a');
  const slow = await soloMember(nodes, 'a', { TIMESTORE_FAST_WRITE: '0' });
  const viaHttp: Answer[] = [];
  for (const c of cases) viaHttp.push((await answersOf(slow, [c], c.path))[0]!);
  // All frames written at once: the answers must come back in the order of the requests.
  const stream = new StreamConnection(fast.url, { connectTimeoutMs: 2_000 });
  try {
    const viaStream = await Promise.all(cases.map((c) => stream.request(c.path, String(c.body), 10_000)));
    cases.forEach((c, i) => {
      const s = viaStream[i]!;
      const h = viaHttp[i]!;
      assert.equal(s.status, h.status, `${c.what}: status`);
      if (c.good) assert.equal(normalize(s.status, {}, s.body).body, h.body, `${c.what}: body`);
      else assert.equal(kind(s.body), kind(h.body), `${c.what}: problem type and title`);
    });
    assert.deepEqual(
      viaStream.map((a) => a.status),
      [200, 400, 400, 200, 200, 200, 400, 400, 400, 400, 200],
    );
    // The request metric counts stream frames under their endpoint.
    const text = await (await fetch(`${fast.url}/metrics`)).text();
    assert.match(text, /route="\/raft\/forward",status="200"\} [4-9]/);
  } finally {
    stream.close();
  }
});

test('frames a byte at a time, an unknown channel and an oversized frame', async () => {
  const n = await soloMember(nodes, 'b');
  const sock = connect(Number(new URL(n.url).port), '127.0.0.1');
  const received: Buffer[] = [];
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  sock.on('data', (c: Buffer) => received.push(c));
  sock.write(
    `GET ${STREAM_PATH} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: ${STREAM_PROTOCOL}\r\n\r\n`,
  );
  const bytes = Buffer.concat([
    encodeRequest(2, JSON.stringify({ command: put(ID(20), 'r20') })),
    encodeRequest(9, '{}'),
    encodeRequest(1, append()),
  ]);
  for (const b of bytes) {
    sock.write(Buffer.from([b]));
    await new Promise((r) => setImmediate(r));
  }
  const answers = async (count: number) => {
    for (let i = 0; i < 500; i++) {
      const all = Buffer.concat(received);
      const end = all.indexOf('\r\n\r\n');
      if (end >= 0) {
        const frames = new FrameReader(1 << 20, 2).push(all.subarray(end + 4));
        if (Array.isArray(frames) && frames.length >= count)
          return { head: all.toString('latin1', 0, end), frames };
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`fewer than ${count} answers: ${Buffer.concat(received).toString('latin1')}`);
  };
  const { head, frames } = await answers(3);
  assert.match(head, /^HTTP\/1\.1 101 /);
  assert.deepEqual(
    frames.map((f) => f.readUInt16BE(0)),
    [200, 400, 200],
  );
  assert.match(frames[1]!.toString('utf8', 2), /channel 9 is not one of/);
  // A frame announcing more than any endpoint takes ends the stream (its bytes cannot be skipped).
  const huge = Buffer.alloc(5);
  huge.writeUInt32BE(0xffffffff, 0);
  sock.write(huge);
  await closed;
  // The node is fine.
  assert.equal((await fetch(`${n.url}/raft/status`)).status, 200);
});

/** A stream to `url` is refused with HTTP `status` (StreamRefusedError) at its first request. */
async function assertUpgradeRefused(url: string, status: number): Promise<void> {
  const stream = new StreamConnection(url, { connectTimeoutMs: 2_000 });
  try {
    await assert.rejects(stream.request('/raft/append', append(), 5_000), (e: unknown) => {
      assert.ok(e instanceof StreamRefusedError);
      assert.equal(e.status, status);
      return true;
    });
  } finally {
    stream.close();
  }
}

test('a peer without streams is spoken to over HTTP; one that refuses the sender too', async () => {
  const slow = await soloMember(nodes, 'c', { TIMESTORE_FAST_WRITE: '0' });
  await assertUpgradeRefused(slow.url, 404);
  const ch = new PeerChannel(slow.url, { connectTimeoutMs: 2_000 }, true);
  try {
    assert.equal(ch.streaming, true);
    // Both were queued behind the refused upgrade: both are answered, over HTTP, in order.
    const [a, b] = await Promise.all([
      ch.request('/raft/forward', JSON.stringify({ command: put(ID(30), 'r30') }), 5_000),
      ch.request('/raft/forward', JSON.stringify({ command: put(ID(31), 'r31') }), 5_000),
    ]);
    assert.deepEqual([a.status, b.status], [200, 200]);
    assert.ok(
      (JSON.parse(a.body) as { index: number }).index < (JSON.parse(b.body) as { index: number }).index,
    );
    assert.equal(ch.streaming, false, 'HTTP for a while after a refusal');
  } finally {
    ch.close();
  }

  // With --cluster-secret: no secret, no stream (401); with it, the stream.
  const port = await freePort();
  const secret = 'stream-test-secret-0123456789abcdef';
  const guarded = await startNodeProcess({
    id: 'd',
    port,
    args: ['--peers', `d=http://127.0.0.1:${port}`, '--cluster-secret', secret],
  });
  nodes.push(guarded);
  await assertUpgradeRefused(guarded.url, 401);
  const withSecret = new StreamConnection(guarded.url, {
    connectTimeoutMs: 2_000,
    headers: { authorization: `Bearer ${secret}` },
  });
  try {
    const r = await withSecret.request('/raft/append', append(), 5_000);
    assert.equal(r.status, 200);
  } finally {
    withSecret.close();
  }
});

test('a node shutting down ends its streams instead of waiting for them', async () => {
  const n = await soloMember(nodes, 'e');
  const stream = new StreamConnection(n.url, { connectTimeoutMs: 2_000 });
  try {
    assert.equal((await stream.request('/raft/append', append(), 5_000)).status, 200);
    const exit = await n.stop('SIGTERM', 30_000);
    assert.equal(exit.code, 0, n.describe());
    // Without ending them, the HTTP server's close waits out its grace period for the open stream
    // and then cuts it, saying so.
    assert.doesNotMatch(n.output(), /did not finish within/, n.describe());
    await assert.rejects(stream.request('/raft/append', append(), 2_000));
  } finally {
    stream.close();
  }
});
