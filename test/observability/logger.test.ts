import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import express from 'express';
import {
  createLogger,
  createRaftEventLogger,
  requestLogger,
  resolveLogLevel,
} from '../../src/observability/logger.js';
import { eventually, listen } from './helpers.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  let buf = '';
  const stream = new Writable({
    write(chunk, _enc, cb) {
      buf += String(chunk);
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        lines.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
        buf = buf.slice(i + 1);
      }
      cb();
    },
  });
  return { lines, stream };
}

test('log level comes from config, then TIMESTORE_LOG_LEVEL, then info; bad values fail fast', () => {
  assert.equal(resolveLogLevel('DEBUG', {}), 'debug');
  assert.equal(resolveLogLevel(undefined, { TIMESTORE_LOG_LEVEL: 'warn' }), 'warn');
  assert.equal(resolveLogLevel(undefined, {}), 'info');
  assert.throws(() => resolveLogLevel('loud', {}), /invalid log level/);
});

test('JSON lines with level label, ISO time and nodeId', () => {
  const { lines, stream } = capture();
  const log = createLogger({ level: 'info', nodeId: 'n1', destination: stream });
  log.debug('hidden');
  log.info({ a: 1 }, 'hello');
  assert.equal(lines.length, 1);
  const l = lines[0]!;
  assert.equal(l.level, 'info');
  assert.equal(l.nodeId, 'n1');
  assert.equal(l.msg, 'hello');
  assert.equal(l.a, 1);
  assert.ok(!Number.isNaN(Date.parse(String(l.time))));
});

test('one line per request with request id (given or generated) and trace id from traceparent', async () => {
  const { lines, stream } = capture();
  const log = createLogger({ level: 'info', nodeId: 'n1', destination: stream });
  const app = express();
  app.use(requestLogger(log));
  app.get('/api/timeseries/device/:deviceId', (_req, res) => {
    res.locals.log.info('inside handler');
    res.json({ ok: true });
  });
  app.get('/boom', (_req, res) => {
    res.status(500).end();
  });
  app.get('/readyz', (_req, res) => {
    res.end('ok');
  });
  const srv = await listen(app);
  try {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    let res = await fetch(`${srv.url}/api/timeseries/device/d1?x=1`, {
      headers: { 'x-request-id': 'req-123', traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
    });
    assert.equal(res.headers.get('x-request-id'), 'req-123');
    await res.text();
    res = await fetch(`${srv.url}/boom`, { headers: { 'x-request-id': 'bad id with spaces' } });
    const generated = res.headers.get('x-request-id');
    assert.match(generated ?? '', /^[0-9a-f-]{36}$/, 'an unsafe id is replaced');
    await res.text();
    await (await fetch(`${srv.url}/readyz`)).text();
    // The line is written on 'finish', which may come a moment after the client has the body.
    await eventually(
      async () => (lines.filter((l) => l.msg === 'request').length >= 2 ? true : undefined),
      'request lines',
    );

    const inside = lines.find((l) => l.msg === 'inside handler')!;
    assert.equal(inside.reqId, 'req-123');
    assert.equal(inside.traceId, traceId);
    const reqLines = lines.filter((l) => l.msg === 'request');
    assert.equal(reqLines.length, 2, 'probe requests are logged at debug only');
    const first = reqLines[0]!;
    assert.equal(first.level, 'info');
    assert.equal(first.reqId, 'req-123');
    assert.equal(first.traceId, traceId);
    assert.equal(first.method, 'GET');
    assert.equal(first.route, '/api/timeseries/device/:deviceId');
    assert.equal(first.path, '/api/timeseries/device/d1');
    assert.equal(first.status, 200);
    assert.equal(typeof first.durationMs, 'number');
    const second = reqLines[1]!;
    assert.equal(second.level, 'error');
    assert.equal(second.reqId, generated);
    assert.equal(second.traceId, undefined);
  } finally {
    await srv.close();
  }
});

test('Raft event logger: role changes, elections, leaders, membership and snapshots at info', () => {
  const { lines, stream } = capture();
  const log = createLogger({ level: 'info', destination: stream });
  const r = createRaftEventLogger(log);
  const m3 = { voters: ['n1', 'n2', 'n3'], learners: [] as string[] };
  r.observe({ id: 'n1', role: 'Follower', leaderId: null, term: 1, membership: m3 });
  r.observe({ id: 'n1', role: 'Follower', leaderId: null, term: 1, membership: m3 }); // nothing changed
  r.observe({ id: 'n1', role: 'Candidate', leaderId: null, term: 2, membership: m3 });
  r.observe({ id: 'n1', role: 'Candidate', leaderId: null, term: 3, membership: m3 });
  r.observe({ id: 'n1', role: 'Leader', leaderId: 'n1', term: 3, membership: m3 });
  r.observe({
    id: 'n1',
    role: 'Leader',
    leaderId: 'n1',
    term: 3,
    membership: { voters: ['n1', 'n2', 'n3'], learners: ['n4'] },
  });
  r.snapshot('take', { index: 500, bytes: 1024, seconds: 0.2 });
  r.snapshot('send', { index: 500, peer: 'n4', error: new Error('reset') });
  const events = lines.map((l) => `${l.level}:${l.event}`);
  assert.deepEqual(events, [
    'info:raft.start',
    'info:raft.election',
    'info:raft.election',
    'info:raft.role',
    'info:raft.leader',
    'info:raft.membership',
    'info:raft.snapshot.take',
    'warn:raft.snapshot.send',
  ]);
  assert.equal(lines[4]!.leaderId, 'n1');
  assert.deepEqual(lines[5]!.learners, ['n4']);
});
