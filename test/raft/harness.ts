// A small synchronous cluster for unit tests: every node's Ready is persisted to a MemoryStorage,
// its messages are queued, and delivery happens when the test says so. Deterministic by construction.
import { MemoryStorage, RaftNode } from '../../src/raft/index.js';
import type { Entry, Message, NodeId, RaftConfig, ReadState, SnapshotMeta } from '../../src/raft/index.js';

export interface TestNode {
  id: NodeId;
  raft: RaftNode;
  storage: MemoryStorage;
  applied: Entry[];
  readStates: ReadState[];
  /** Application snapshot: the applied entries' data up to meta.index. */
  snap: { meta: SnapshotMeta; data: string[] } | null;
}

export function seqRandom(seed = 1): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function baseConfig(id: NodeId, storage: MemoryStorage, over: Partial<RaftConfig> = {}): RaftConfig {
  return {
    id,
    storage,
    electionTick: 10,
    heartbeatTick: 1,
    random: seqRandom(id.charCodeAt(id.length - 1)),
    preVote: false,
    checkQuorum: false,
    readOnly: 'safe',
    maxSizePerMsg: 1 << 20,
    maxInflightMsgs: 256,
    maxInflightBytes: 0,
    applied: 0,
    ...over,
  };
}

export class TestCluster {
  readonly nodes = new Map<NodeId, TestNode>();
  queue: Message[] = [];
  /** Directed links that drop messages: "a->b". */
  readonly cut = new Set<string>();
  /** Every message delivered or dropped, for assertions. */
  sent: Message[] = [];
  readonly over: Partial<RaftConfig>;

  constructor(ids: NodeId[], over: Partial<RaftConfig> = {}) {
    this.over = over;
    for (const id of ids) this.add(id, new MemoryStorage(ids));
  }

  add(id: NodeId, storage: MemoryStorage, applied = 0): TestNode {
    const raft = new RaftNode(baseConfig(id, storage, { ...this.over, applied }));
    const n: TestNode = { id, raft, storage, applied: [], readStates: [], snap: null };
    this.nodes.set(id, n);
    return n;
  }

  node(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** Handle every pending Ready of every node (persist, queue messages, apply, advance). */
  drain(): void {
    let again = true;
    while (again) {
      again = false;
      for (const n of this.nodes.values()) {
        while (n.raft.hasReady()) {
          again = true;
          const rd = n.raft.ready();
          if (rd.snapshot) {
            n.storage.applySnapshot(rd.snapshot);
            const from = this.snapSource.get(n.id);
            n.applied = from
              ? from.map((d, i) => ({ index: i + 1, term: 0, kind: 'normal', data: d }) as Entry)
              : [];
          }
          n.storage.append(rd.entries);
          if (rd.hardState) n.storage.setHardState(rd.hardState);
          this.queue.push(...rd.messages);
          for (const e of rd.committedEntries) n.applied.push(e);
          n.readStates.push(...rd.readStates);
          n.raft.advance(rd);
        }
      }
    }
  }

  private snapSource = new Map<NodeId, string[]>();

  /** Deliver queued messages until the network is quiet (or `max` rounds). */
  stabilize(max = 1000): void {
    for (let i = 0; i < max; i++) {
      this.drain();
      if (this.queue.length === 0) return;
      const q = this.queue;
      this.queue = [];
      for (const m of q) this.deliver(m);
    }
    throw new Error('cluster did not stabilize');
  }

  /** Handle Readies, then deliver exactly the messages queued so far. */
  round(): void {
    this.drain();
    const q = this.queue;
    this.queue = [];
    for (const m of q) this.deliver(m);
  }

  deliver(m: Message): void {
    this.sent.push(m);
    const to = this.nodes.get(m.to);
    if (!to || this.cut.has(`${m.from}->${m.to}`)) {
      if (m.type === 'snapshot') this.nodes.get(m.from)?.raft.reportSnapshot(m.to, false);
      return;
    }
    if (m.type === 'snapshot') {
      const src = this.node(m.from);
      if (!src.snap || src.snap.meta.index !== m.snapshot.index) throw new Error('snapshot data unavailable');
      this.snapSource.set(m.to, src.snap.data);
      src.raft.reportSnapshot(m.to, true);
    }
    to.raft.step(m);
  }

  tick(n = 1, ids?: NodeId[]): void {
    for (let i = 0; i < n; i++) {
      for (const node of this.nodes.values()) if (!ids || ids.includes(node.id)) node.raft.tick();
      this.stabilize();
    }
  }

  leader(): TestNode | undefined {
    const ls = [...this.nodes.values()].filter((n) => n.raft.status().role === 'Leader');
    if (ls.length > 1) {
      const terms = ls.map((l) => l.raft.status().term);
      if (new Set(terms).size !== terms.length) throw new Error('two leaders in one term');
      return ls.sort((a, b) => b.raft.status().term - a.raft.status().term)[0];
    }
    return ls[0];
  }

  /** Elect `id` by forcing its campaign. */
  elect(id: NodeId): TestNode {
    this.node(id).raft.campaign();
    this.stabilize();
    const l = this.leader();
    if (!l || l.id !== id) throw new Error(`${id} did not become leader`);
    return l;
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}->${other}`);
      this.cut.add(`${other}->${id}`);
    }
  }

  heal(): void {
    this.cut.clear();
  }

  /** Take an application snapshot at the node's applied index and compact the log up to it. */
  compact(id: NodeId): SnapshotMeta {
    const n = this.node(id);
    const st = n.raft.status();
    const idx = st.appliedIndex;
    const meta = n.storage.createSnapshot(idx, st.membership);
    n.snap = {
      meta,
      data: n.applied.filter((e) => e.index <= idx).map((e) => (e.kind === 'normal' ? e.data : '')),
    };
    n.storage.compact(idx);
    return meta;
  }

  data(id: NodeId): string[] {
    return this.node(id)
      .applied.filter((e) => e.kind === 'normal' && e.data !== '')
      .map((e) => e.data);
  }
}
