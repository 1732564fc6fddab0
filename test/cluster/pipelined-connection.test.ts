// The transport's pipelined HTTP/1.1 connection (AppendEntries) against a real node:http server on
// 127.0.0.1: order of pipelined answers, framing (Content-Length, chunked), bytes on the socket
// before request() returns, failures (server closes, timeout, refused) and reconnecting.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import {
  ConnectionError,
  PipelinedConnection,
  decodeChunked,
  parseResponseHead,
} from '../../src/node/raft/pipelined-connection.js';

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

async function server(handler: Handler) {
  const sockets = new Set<Socket>();
  const received: string[] = [];
  const s = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      received.push(body);
      handler(req, body, res);
    });
  });
  s.on('connection', (sock) => {
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  const close = () =>
    new Promise<void>((r) => {
      for (const sock of sockets) sock.destroy();
      s.close(() => r());
    });
  closers.push(close);
  return { url, received, sockets, close };
}
const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of closers) await c();
});

const echo: Handler = (req, body, res) => res.setHeader('content-type', 'application/json').end(body);

test('pipelined requests on one connection are answered in order, even when the server answers late', async () => {
  // The server holds the first answer back; node:http still answers pipelined requests in order.
  const srv = await server((req, body, res) => {
    const n = Number(JSON.parse(body).n);
    setTimeout(() => echo(req, body, res), n === 0 ? 50 : 0);
  });
  const c = new PipelinedConnection(srv.url, { connectTimeoutMs: 1_000 });
  const answers = await Promise.all(
    [0, 1, 2, 3, 4].map((n) => c.request('/raft/append', JSON.stringify({ n }), 5_000)),
  );
  assert.deepEqual(
    answers.map((a) => [a.status, JSON.parse(a.body).n]),
    [0, 1, 2, 3, 4].map((n) => [200, n]),
  );
  assert.equal(srv.sockets.size, 1, 'one connection for all of them');
  assert.equal(c.inFlight, 0);
  c.close();
});

test('the request is on the socket when request() returns (no loop turn before the write)', async () => {
  const srv = await server(echo);
  const c = new PipelinedConnection(srv.url, { connectTimeoutMs: 1_000 });
  await c.request('/raft/append', '{"warm":1}', 5_000); // connected and idle now
  const sock = (c as unknown as { socket: Socket }).socket;
  const before = sock.bytesWritten;
  const p = c.request('/raft/append', '{"n":1}', 5_000);
  // Synchronously: the whole request (head + body) was handed to the socket.
  assert.ok(sock.bytesWritten - before > '{"n":1}'.length, `${sock.bytesWritten - before} bytes written`);
  assert.equal(sock.writableLength, 0, 'nothing left in the JavaScript write queue');
  assert.equal((await p).body, '{"n":1}');
  c.close();
});

test('UTF-8 bodies, status codes and chunked answers are read exactly', async () => {
  const srv = await server((req, body, res) => {
    const { mode } = JSON.parse(body);
    if (mode === 'chunked') {
      res.setHeader('content-type', 'application/json');
      res.write('{"a":"ü');
      setTimeout(() => res.end('€","b":2}'), 5);
    } else if (mode === 'status') {
      res.statusCode = 400;
      res.setHeader('content-type', 'application/problem+json');
      res.end('{"title":"bad"}');
    } else echo(req, body, res);
  });
  const c = new PipelinedConnection(srv.url, { connectTimeoutMs: 1_000 });
  const [a, b, d] = await Promise.all([
    c.request('/x', JSON.stringify({ mode: 'chunked' }), 5_000),
    c.request('/x', JSON.stringify({ mode: 'status' }), 5_000),
    c.request('/x', JSON.stringify({ mode: 'echo', s: 'ñ✓😀' }), 5_000),
  ]);
  assert.deepEqual(JSON.parse(a.body), { a: 'ü€', b: 2 });
  assert.equal(b.status, 400);
  assert.equal(JSON.parse(b.body).title, 'bad');
  assert.equal(JSON.parse(d.body).s, 'ñ✓😀');
  assert.equal(srv.received.length, 3);
  c.close();
});

test('a server that drops the connection fails what is pending; the next request reconnects', async () => {
  let drop = true;
  const srv = await server((req, body, res) => {
    if (drop) req.socket.destroy();
    else echo(req, body, res);
  });
  const c = new PipelinedConnection(srv.url, { connectTimeoutMs: 1_000 });
  await assert.rejects(c.request('/x', '{}', 5_000), ConnectionError);
  drop = false;
  assert.equal((await c.request('/x', '{"again":1}', 5_000)).body, '{"again":1}');
  c.close();
});

test('no answer within the timeout: rejected and the connection dropped', async () => {
  const srv = await server(() => {
    /* never answers */
  });
  const c = new PipelinedConnection(srv.url, { connectTimeoutMs: 1_000 });
  await assert.rejects(c.request('/x', '{}', 100), /within 100 ms/);
  assert.equal(c.inFlight, 0);
  c.close();
  await srv.close();
});

test('refused connection and a closed connection object reject', async () => {
  const srv = await server(echo);
  const url = srv.url;
  await srv.close();
  const c = new PipelinedConnection(url, { connectTimeoutMs: 1_000 });
  await assert.rejects(c.request('/x', '{}', 5_000), ConnectionError);
  c.close();
  await assert.rejects(c.request('/x', '{}', 5_000), /closed/);
});

test('response head and chunked decoding (pure)', () => {
  assert.deepEqual(parseResponseHead('HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: keep-alive'), {
    status: 200,
    contentLength: 12,
    chunked: false,
    close: false,
  });
  assert.equal(parseResponseHead('HTTP/1.1 503 Service Unavailable\r\nConnection: close')?.close, true);
  assert.equal(parseResponseHead('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked')?.chunked, true);
  assert.equal(parseResponseHead('SMTP 220 hello'), null);
  assert.equal(parseResponseHead('HTTP/1.1 200 OK\r\nContent-Length: -1'), null);
  const buf = Buffer.from('xx3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\nNEXT');
  assert.deepEqual(decodeChunked(buf, 2), { body: 'abcde', end: buf.length - 4 });
  assert.equal(decodeChunked(Buffer.from('3\r\nab'), 0), 'incomplete');
  assert.equal(decodeChunked(Buffer.from('zz\r\n'), 0), null);
});
