// A fault-injecting TCP proxy for every directed link between cluster nodes, controlled in-process.
//
// Node A reaches node B through the proxy (A→B): A's --peers lists that proxy's port as B's URL, so
// the nodes do not know they are being tested. A TCP connection carries bytes both ways, so faults are
// set per directed *byte flow*: link(A,B) governs the bytes A sends to B, whoever opened the
// connection (A's requests on A→B connections and A's responses on B→A connections). Cutting
// link(A,B) alone is therefore a true asymmetric partition: B never hears from A, A hears from B.
//
// Modes of a link:
//   pass       forward bytes;
//   delay      forward after ms (+ jitter), order preserved;
//   blackhole  accept and read, never forward (the sender sees silence, as with iptables DROP);
//              a connection that lost bytes is reset when the link heals (a real TCP connection
//              would have timed out; a half-delivered HTTP stream must not be resumed);
//   reset      refuse: existing connections over the link are reset, new ones are reset at once.
import { createServer, connect, type Server, type Socket } from 'node:net';

export type LinkMode =
  | { kind: 'pass' }
  | { kind: 'delay'; ms: number; jitterMs?: number }
  | { kind: 'blackhole' }
  | { kind: 'reset' };

export const PASS: LinkMode = { kind: 'pass' };
export const BLACKHOLE: LinkMode = { kind: 'blackhole' };
export const RESET: LinkMode = { kind: 'reset' };

export type Link = readonly [from: string, to: string];

const key = (from: string, to: string) => `${from}->${to}`;

export interface LinkStats {
  connections: number;
  bytesForwarded: number;
  bytesDropped: number;
  resets: number;
}

interface Conn {
  /** Socket from the node that opened the connection. */
  client: Socket;
  /** Socket to the node it wanted to reach. */
  upstream: Socket;
  initiator: string;
  target: string;
  /** Bytes were dropped on this connection: it cannot carry a well-formed stream any more. */
  tainted: boolean;
  closed: boolean;
}

/** Partition helpers: each returns the set of directed links to cut. */
export const partitions = {
  /** Cut every link between different groups, both ways. Nodes in no group keep all their links. */
  groups(groups: string[][]): Link[] {
    const out: Link[] = [];
    for (let i = 0; i < groups.length; i++)
      for (let j = 0; j < groups.length; j++)
        if (i !== j) for (const a of groups[i]!) for (const b of groups[j]!) out.push([a, b]);
    return out;
  },
  /** Isolate one node from all others (both ways). */
  isolate(node: string, all: string[]): Link[] {
    return partitions.groups([[node], all.filter((n) => n !== node)]);
  },
  /** Majority/minority split: `minority` (fewer than half) against everyone else. */
  majorityMinority(minority: string[], all: string[]): Link[] {
    if (minority.length * 2 >= all.length) throw new Error('minority must be fewer than half the nodes');
    return partitions.groups([minority, all.filter((n) => !minority.includes(n))]);
  },
  /** One-way: bytes from every node of `from` to every node of `to` are cut; the reverse flows. */
  asymmetric(from: string[], to: string[]): Link[] {
    const out: Link[] = [];
    for (const a of from) for (const b of to) if (a !== b) out.push([a, b]);
    return out;
  },
  /** Bridge: sides A and B cannot talk to each other; `bridge` talks to both (Jepsen's "bridge"). */
  bridge(sideA: string[], bridge: string, sideB: string[]): Link[] {
    return partitions.groups([sideA, sideB]).filter(([a, b]) => a !== bridge && b !== bridge);
  },
  /** Ring: each node talks only to its two neighbours (for n ≥ 4 no node sees a majority directly). */
  ring(all: string[]): Link[] {
    const n = all.length;
    const out: Link[] = [];
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        const d = Math.min((i - j + n) % n, (j - i + n) % n);
        if (d > 1) out.push([all[i]!, all[j]!]);
      }
    return out;
  },
};

export class FaultNetwork {
  private readonly modes = new Map<string, LinkMode>();
  private readonly stats = new Map<string, LinkStats>();
  private readonly servers = new Map<string, Server>();
  private readonly proxyPorts = new Map<string, number>();
  private readonly conns = new Set<Conn>();
  /** Real addresses of nodes (host:port), for the node's own entry in its --peers list. */
  private readonly addresses = new Map<string, { host: string; port: number }>();

  constructor(
    readonly nodes: string[],
    readonly host = '127.0.0.1',
  ) {
    for (const a of nodes)
      for (const b of nodes)
        if (a !== b)
          this.stats.set(key(a, b), { connections: 0, bytesForwarded: 0, bytesDropped: 0, resets: 0 });
  }

  /** Start the proxies for all directed pairs towards the nodes' real ports. */
  async start(realPorts: Record<string, number>): Promise<void> {
    await this.listen();
    this.setTargets(realPorts);
  }

  /** Open the proxies' listening ports (before choosing the nodes' ports, so they cannot collide). */
  async listen(): Promise<void> {
    for (const a of this.nodes)
      for (const b of this.nodes) if (a !== b && !this.servers.has(key(a, b))) await this.startProxy(a, b);
  }

  /** Where each node really listens (used when a proxy connection is opened). */
  setTargets(realPorts: Record<string, number>): void {
    for (const n of this.nodes) {
      const port = realPorts[n];
      if (port === undefined) throw new Error(`no port for ${n}`);
      this.addresses.set(n, { host: this.host, port });
    }
  }

  /** Port of the proxy that `from` uses to reach `to`. */
  proxyPort(from: string, to: string): number {
    const p = this.proxyPorts.get(key(from, to));
    if (p === undefined) throw new Error(`no proxy ${key(from, to)}`);
    return p;
  }

  /** The --peers value for a node: itself at its real address, every other node through a proxy. */
  peersFor(node: string): string {
    return this.nodes
      .map((n) => {
        if (n === node) {
          const a = this.addresses.get(n)!;
          return `${n}=http://${a.host}:${a.port}`;
        }
        return `${n}=http://${this.host}:${this.proxyPort(node, n)}`;
      })
      .join(',');
  }

  private async startProxy(from: string, to: string): Promise<void> {
    const server = createServer({ noDelay: true }, (client) => this.onConnection(client, from, to));
    server.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, this.host, () => resolve());
    });
    const addr = server.address();
    if (!addr || typeof addr !== 'object') throw new Error('proxy has no address');
    this.servers.set(key(from, to), server);
    this.proxyPorts.set(key(from, to), addr.port);
  }

  mode(from: string, to: string): LinkMode {
    return this.modes.get(key(from, to)) ?? PASS;
  }

  linkStats(from: string, to: string): LinkStats {
    return this.stats.get(key(from, to))!;
  }

  /** Set the mode of directed links (bytes from → to). */
  set(links: Iterable<Link>, mode: LinkMode): void {
    const changed = new Set<string>();
    for (const [a, b] of links) {
      if (a === b) continue;
      const k = key(a, b);
      if (!this.stats.has(k)) throw new Error(`unknown link ${k}`);
      if (mode.kind === 'pass') this.modes.delete(k);
      else this.modes.set(k, mode);
      changed.add(k);
    }
    for (const c of this.conns) {
      const up = key(c.initiator, c.target);
      const down = key(c.target, c.initiator);
      if (!changed.has(up) && !changed.has(down)) continue;
      const mUp = this.mode(c.initiator, c.target);
      const mDown = this.mode(c.target, c.initiator);
      if (mUp.kind === 'reset' || mDown.kind === 'reset') this.reset(c);
      else if (c.tainted && mUp.kind !== 'blackhole' && mDown.kind !== 'blackhole') this.reset(c);
    }
  }

  /** Cut the links (default: blackhole). */
  cut(links: Iterable<Link>, mode: LinkMode = BLACKHOLE): void {
    this.set(links, mode);
  }

  /** Every link back to pass (connections that lost bytes are reset). */
  heal(): void {
    const all: Link[] = [];
    for (const a of this.nodes) for (const b of this.nodes) if (a !== b) all.push([a, b]);
    this.set(all, PASS);
  }

  /** Directed links currently not passing. */
  faultyLinks(): Array<{ from: string; to: string; mode: LinkMode }> {
    return [...this.modes.entries()].map(([k, mode]) => {
      const [from, to] = k.split('->') as [string, string];
      return { from, to, mode };
    });
  }

  /** Reset every live connection from or to a node (e.g. it was killed: the kernel would do this). */
  resetConnectionsOf(node: string): void {
    for (const c of this.conns) if (c.initiator === node || c.target === node) this.reset(c);
  }

  private reset(c: Conn): void {
    if (c.closed) return;
    c.closed = true;
    this.conns.delete(c);
    this.stats.get(key(c.initiator, c.target))!.resets++;
    c.client.resetAndDestroy();
    c.upstream.resetAndDestroy();
  }

  private onConnection(client: Socket, from: string, to: string): void {
    client.on('error', () => {});
    this.stats.get(key(from, to))!.connections++;
    if (this.mode(from, to).kind === 'reset' || this.mode(to, from).kind === 'reset') {
      this.stats.get(key(from, to))!.resets++;
      client.resetAndDestroy();
      return;
    }
    const target = this.addresses.get(to);
    if (!target) {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect({ host: target.host, port: target.port, noDelay: true });
    upstream.on('error', () => {});
    const c: Conn = { client, upstream, initiator: from, target: to, tainted: false, closed: false };
    this.conns.add(c);
    this.pipe(c, client, upstream, from, to);
    this.pipe(c, upstream, client, to, from);
    const close = () => {
      if (c.closed) return;
      c.closed = true;
      this.conns.delete(c);
      // Forward the close (and the RST if there was one).
      if (client.destroyed || upstream.destroyed) {
        client.destroy();
        upstream.destroy();
      }
    };
    client.on('close', (hadError) => {
      if (hadError) upstream.resetAndDestroy();
      else upstream.end();
      close();
    });
    upstream.on('close', (hadError) => {
      if (hadError) client.resetAndDestroy();
      else client.end();
      close();
    });
  }

  /** Forward src → dst under the mode of the directed link (a → b), preserving order under delay. */
  private pipe(c: Conn, src: Socket, dst: Socket, a: string, b: string): void {
    const st = this.stats.get(key(a, b))!;
    // Chunks waiting for their release time (delay mode), in arrival order.
    const queue: Array<{ at: number; chunk: Buffer }> = [];
    let timer: NodeJS.Timeout | null = null;
    const write = (chunk: Buffer) => {
      if (c.closed || dst.destroyed) return;
      st.bytesForwarded += chunk.length;
      if (!dst.write(chunk)) {
        src.pause();
        dst.once('drain', () => src.resume());
      }
    };
    const flush = () => {
      timer = null;
      const now = Date.now();
      while (queue.length > 0 && queue[0]!.at <= now) write(queue.shift()!.chunk);
      if (queue.length > 0) timer = setTimeout(flush, queue[0]!.at - now);
    };
    src.on('data', (chunk: Buffer) => {
      const m = this.mode(a, b);
      if (m.kind === 'reset') return this.reset(c);
      if (m.kind === 'blackhole') {
        st.bytesDropped += chunk.length;
        c.tainted = true;
        return;
      }
      if (m.kind === 'delay' || queue.length > 0) {
        const ms = m.kind === 'delay' ? m.ms + Math.random() * (m.jitterMs ?? 0) : 0;
        const last = queue.length > 0 ? queue[queue.length - 1]!.at : 0;
        queue.push({ at: Math.max(last, Date.now() + ms), chunk });
        if (timer === null) timer = setTimeout(flush, Math.max(0, queue[0]!.at - Date.now()));
        return;
      }
      write(chunk);
    });
  }

  /** Close all proxies and connections. */
  async close(): Promise<void> {
    for (const c of [...this.conns]) this.reset(c);
    await Promise.all(
      [...this.servers.values()].map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
          }),
      ),
    );
    this.servers.clear();
  }
}
