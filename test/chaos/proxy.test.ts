import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { FaultNetwork, partitions, BLACKHOLE, RESET, PASS } from './proxy.js';

const servers: Server[] = [];
after(async () => {
  for (const s of servers) await new Promise((r) => s.close(r));
});

/** An echo server that counts the bytes it received. */
async function echoServer(): Promise<{ port: number; received: () => number }> {
  let received = 0;
  const s = createServer((sock) => {
    sock.on('error', () => {});
    sock.on('data', (d) => {
      received += d.length;
      sock.write(d);
    });
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  servers.push(s);
  return { port: (s.address() as { port: number }).port, received: () => received };
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Resolves with what came back, or 'silence' if nothing within ms (only used where silence is expected). */
function roundTrip(s: Socket, data: string, ms = 5000): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const done = (v: string) => {
      clearTimeout(t);
      s.off('data', onData);
      resolve(v);
    };
    const onData = (d: Buffer) => {
      got += d.toString();
      if (got.length >= data.length) done(got);
    };
    const t = setTimeout(() => done(got.length ? got : 'silence'), ms);
    s.on('data', onData);
    s.write(data);
  });
}

const closed = (s: Socket) => new Promise<void>((r) => (s.destroyed ? r() : s.once('close', () => r())));

async function net2(): Promise<{ net: FaultNetwork; echo: Awaited<ReturnType<typeof echoServer>> }> {
  const echo = await echoServer();
  const other = await echoServer();
  const net = new FaultNetwork(['a', 'b']);
  await net.start({ a: other.port, b: echo.port });
  return { net, echo };
}

describe('fault proxy: link modes', () => {
  test('pass forwards both ways and peersFor points at the proxies', async () => {
    const { net, echo } = await net2();
    try {
      const s = await open(net.proxyPort('a', 'b'));
      assert.equal(await roundTrip(s, 'hello'), 'hello');
      assert.equal(echo.received(), 5);
      const peers = net.peersFor('a');
      assert.match(peers, /^a=http:\/\/127\.0\.0\.1:\d+,b=http:\/\/127\.0\.0\.1:\d+$/);
      assert.ok(peers.endsWith(`b=http://127.0.0.1:${net.proxyPort('a', 'b')}`));
      assert.ok(net.linkStats('a', 'b').bytesForwarded >= 5);
      assert.ok(net.linkStats('b', 'a').bytesForwarded >= 5);
      s.destroy();
    } finally {
      await net.close();
    }
  });

  test('blackhole swallows bytes; healing resets the connection that lost bytes; new connections pass', async () => {
    const { net, echo } = await net2();
    try {
      const s = await open(net.proxyPort('a', 'b'));
      assert.equal(await roundTrip(s, 'x'), 'x');
      net.cut([['a', 'b']]);
      assert.equal(await roundTrip(s, 'lost', 300), 'silence');
      assert.equal(echo.received(), 1);
      assert.ok(net.linkStats('a', 'b').bytesDropped >= 4);
      net.heal();
      await closed(s);
      const s2 = await open(net.proxyPort('a', 'b'));
      assert.equal(await roundTrip(s2, 'again'), 'again');
      s2.destroy();
    } finally {
      await net.close();
    }
  });

  test('asymmetric: the request arrives, the answer does not', async () => {
    const { net, echo } = await net2();
    try {
      net.cut(partitions.asymmetric(['b'], ['a']));
      assert.deepEqual(
        net.faultyLinks().map((l) => `${l.from}->${l.to}`),
        ['b->a'],
      );
      const s = await open(net.proxyPort('a', 'b'));
      assert.equal(await roundTrip(s, 'ping', 300), 'silence');
      assert.equal(echo.received(), 4); // b got it
      s.destroy();
    } finally {
      await net.close();
    }
  });

  test('reset: live connections are reset, new ones too, until healed', async () => {
    const { net } = await net2();
    try {
      const s = await open(net.proxyPort('a', 'b'));
      assert.equal(await roundTrip(s, 'x'), 'x');
      net.cut([['a', 'b']], RESET);
      await closed(s);
      const s2 = connect({ host: '127.0.0.1', port: net.proxyPort('a', 'b') });
      s2.on('error', () => {});
      await closed(s2);
      net.set([['a', 'b']], PASS);
      const s3 = await open(net.proxyPort('a', 'b'));
      assert.equal(await roundTrip(s3, 'ok'), 'ok');
      s3.destroy();
    } finally {
      await net.close();
    }
  });

  test('delay holds bytes at least that long and keeps their order', async () => {
    const { net } = await net2();
    try {
      net.set([['a', 'b']], { kind: 'delay', ms: 150, jitterMs: 50 });
      const s = await open(net.proxyPort('a', 'b'));
      const started = Date.now();
      const payload = Array.from({ length: 200 }, (_, i) => `<${i}>`).join('');
      let got = '';
      const done = new Promise<void>((r) =>
        s.on('data', (d) => {
          got += d.toString();
          if (got.length >= payload.length) r();
        }),
      );
      for (let i = 0; i < 200; i++) s.write(`<${i}>`);
      await done;
      assert.ok(Date.now() - started >= 140);
      assert.equal(got, payload);
      s.destroy();
    } finally {
      await net.close();
    }
  });

  test('HTTP through the proxy: answers on pass, times out on blackhole', async () => {
    const http = createHttpServer((req, res) => res.end('pong'));
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const port = (http.address() as { port: number }).port;
    const net = new FaultNetwork(['a', 'b']);
    await net.start({ a: 1, b: port });
    try {
      const url = `http://127.0.0.1:${net.proxyPort('a', 'b')}/`;
      assert.equal(await (await fetch(url)).text(), 'pong');
      net.cut(partitions.isolate('b', ['a', 'b']), BLACKHOLE);
      await assert.rejects(fetch(url, { signal: AbortSignal.timeout(300) }));
      net.heal();
      assert.equal(await (await fetch(url)).text(), 'pong');
    } finally {
      await net.close();
      http.closeAllConnections();
      await new Promise((r) => http.close(r));
    }
  });

  test('resetConnectionsOf drops every connection of a node', async () => {
    const { net } = await net2();
    try {
      const s = await open(net.proxyPort('a', 'b'));
      assert.equal(await roundTrip(s, 'x'), 'x');
      net.resetConnectionsOf('b');
      await closed(s);
    } finally {
      await net.close();
    }
  });
});

describe('fault proxy: partition shapes', () => {
  const all = ['n1', 'n2', 'n3', 'n4', 'n5'];
  const s = (links: ReadonlyArray<readonly [string, string]>) => links.map(([a, b]) => `${a}>${b}`).sort();

  test('groups cut both directions between groups only', () => {
    assert.deepEqual(s(partitions.groups([['n1'], ['n2', 'n3']])), ['n1>n2', 'n1>n3', 'n2>n1', 'n3>n1']);
  });

  test('majority/minority', () => {
    const cut = partitions.majorityMinority(['n1', 'n2'], all);
    assert.equal(cut.length, 2 * 3 * 2);
    assert.throws(() => partitions.majorityMinority(['n1', 'n2', 'n3'], all));
  });

  test('bridge: the bridge keeps both sides, the sides lose each other', () => {
    const cut = s(partitions.bridge(['n1', 'n2'], 'n3', ['n4', 'n5']));
    assert.equal(cut.length, 8);
    assert.ok(!cut.some((l) => l.includes('n3')));
    assert.ok(cut.includes('n1>n4') && cut.includes('n5>n2'));
  });

  test('asymmetric is one-way', () => {
    assert.deepEqual(s(partitions.asymmetric(['n1'], ['n2', 'n3'])), ['n1>n2', 'n1>n3']);
  });

  test('ring leaves each node its two neighbours', () => {
    const cut = partitions.ring(all);
    for (const n of all) {
      const reachable = all.filter((m) => m !== n && !cut.some(([a, b]) => a === n && b === m));
      assert.equal(reachable.length, 2);
    }
  });

  test('setting an unknown link throws', async () => {
    const net = new FaultNetwork(['a', 'b']);
    assert.throws(() => net.cut([['a', 'zz']]));
    await net.close();
  });
});
