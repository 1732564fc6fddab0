// Several `timestore node` processes forming one cluster through --peers (ports and data dirs are
// chosen first, because every node must know every peer's URL at start). Each member is a
// NodeProcess: stop/kill/restart one to inject faults.
import { NodeProcess, type NodeProcessOptions } from './node.js';
import { freePorts } from './ports.js';
import { tempDir } from './tmp.js';
import { waitForHttp } from './http.js';

export interface ClusterOptions {
  size: number;
  /** Node ids; default n1..nN. */
  ids?: string[];
  host?: string;
  /** Extra CLI args for every node (e.g. ['--election-timeout-ms', '300']). */
  args?: string[];
  env?: Record<string, string | undefined>;
  /** Path each node must answer 200 on before startCluster resolves; default /livez. */
  readyPath?: string;
  startTimeoutMs?: number;
}

export interface TestCluster {
  nodes: NodeProcess[];
  /** The --peers value the nodes were started with. */
  peers: string;
  byId(id: string): NodeProcess;
  /** Stop every running node (SIGTERM), in parallel. */
  stop(): Promise<void>;
  /** SIGKILL every running node. */
  kill(): Promise<void>;
}

export async function startCluster(opts: ClusterOptions): Promise<TestCluster> {
  const host = opts.host ?? '127.0.0.1';
  const ids = opts.ids ?? Array.from({ length: opts.size }, (_, i) => `n${i + 1}`);
  const ports = await freePorts(ids.length, host);
  const peers = ids.map((id, i) => `${id}=http://${host}:${ports[i]}`).join(',');
  const nodes = ids.map((id, i) => {
    const nodeOpts: NodeProcessOptions & { port: number; dataDir: string } = {
      id,
      host,
      port: ports[i]!,
      dataDir: tempDir(`timestore-${id}-`),
      args: ['--peers', peers, ...(opts.args ?? [])],
      readyPath: null, // started together below, then waited on together
      ...(opts.env ? { env: opts.env } : {}),
    };
    return new NodeProcess(nodeOpts);
  });
  const cluster: TestCluster = {
    nodes,
    peers,
    byId(id) {
      const n = nodes.find((x) => x.id === id);
      if (!n) throw new Error(`no node ${id} in this cluster (${ids.join(', ')})`);
      return n;
    },
    async stop() {
      await Promise.all(nodes.filter((n) => n.proc?.running).map((n) => n.stop()));
    },
    async kill() {
      await Promise.all(nodes.filter((n) => n.proc?.running).map((n) => n.kill()));
    },
  };
  try {
    await Promise.all(nodes.map((n) => n.start()));
    const path = opts.readyPath ?? '/livez';
    await Promise.all(
      nodes.map((n) =>
        waitForHttp(n.url + path, {
          process: n.proc,
          timeoutMs: opts.startTimeoutMs ?? 60_000,
          ready: (s) => s === 200,
        }),
      ),
    );
  } catch (err) {
    await cluster.kill();
    throw err;
  }
  return cluster;
}
