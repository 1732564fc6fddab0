// `timestore cluster`: a local cluster of N node processes on consecutive ports (what `npm start`
// runs). Each node is this same program run as `timestore node --peers ...`; the launcher prints
// their URLs, forwards SIGINT/SIGTERM to them, and stops them all when it exits. Each node also
// has an IPC channel to the launcher and shuts down gracefully when that closes: a launcher killed
// with SIGKILL (whose exit handler never runs) leaves no nodes behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError, describeFlagIssues, intFlag, parseFlags, type FlagSpec } from '../config.js';

export const clusterFlagSpecs: FlagSpec[] = [
  { name: 'nodes', valueName: 'n', description: 'Number of nodes (voters)', default: '3' },
  {
    name: 'base-port',
    valueName: 'port',
    description: 'Port of the first node; the others follow',
    default: '5001',
  },
  { name: 'host', valueName: 'host', description: 'Address the nodes listen on', default: '127.0.0.1' },
  {
    name: 'data-dir',
    valueName: 'path',
    description: 'Parent directory; node i keeps its data in <path>/n<i>',
    default: './data',
  },
  {
    name: 'election-timeout-ms',
    valueName: 'ms',
    description: 'Raft election timeout of every node',
    default: '1000',
  },
  {
    name: 'heartbeat-ms',
    valueName: 'ms',
    description: 'Raft heartbeat interval of every node',
    default: '100',
  },
  { name: 'log-level', valueName: 'level', description: 'Log level of the nodes', default: 'info' },
];

const schema = z.object({
  nodes: intFlag(1, 99),
  basePort: intFlag(1, 65535),
  host: z.string().min(1),
  dataDir: z.string().min(1),
  electionTimeoutMs: z.string(),
  heartbeatMs: z.string(),
  logLevel: z.string(),
});

export type ClusterConfig = z.infer<typeof schema>;

export function parseClusterArgs(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): ClusterConfig | { help: true } {
  // Only the cluster's own flags: TIMESTORE_* of `timestore node` (e.g. TIMESTORE_ID) must not leak in.
  const flags = parseFlags(argv, clusterFlagSpecs, env);
  if (flags.help) return { help: true };
  if (flags.positionals.length > 0) throw new ConfigError(`unexpected argument "${flags.positionals[0]}"`);
  const v = flags.values;
  const r = schema.safeParse({
    nodes: v.nodes,
    basePort: v['base-port'],
    host: v.host,
    dataDir: v['data-dir'],
    electionTimeoutMs: v['election-timeout-ms'],
    heartbeatMs: v['heartbeat-ms'],
    logLevel: v['log-level'],
  });
  if (!r.success) throw new ConfigError(describeFlagIssues(r.error, flags.sources));
  if (r.data.basePort + r.data.nodes - 1 > 65535)
    throw new ConfigError("--base-port: the last node's port would be above 65535");
  return r.data;
}

export interface LaunchedNode {
  id: string;
  url: string;
  child: ChildProcess;
}

/**
 * Start the nodes. `entry` is the argv prefix that runs the `timestore` CLI (node flags + script),
 * by default this very process's (so it works from source through tsx and from dist/).
 */
export function launchCluster(
  c: ClusterConfig,
  entry: string[] = [...process.execArgv, process.argv[1]!],
  out: NodeJS.WritableStream = process.stdout,
): { nodes: LaunchedNode[]; stop: (signal?: NodeJS.Signals) => Promise<void>; exited: Promise<void> } {
  const ids = Array.from({ length: c.nodes }, (_, i) => `n${i + 1}`);
  const urls = ids.map((_, i) => `http://${c.host.includes(':') ? `[${c.host}]` : c.host}:${c.basePort + i}`);
  const peers = ids.map((id, i) => `${id}=${urls[i]}`).join(',');
  // Children are the launcher's own TIMESTORE_* settings minus per-node ones.
  const env = { ...process.env };
  for (const k of [
    'TIMESTORE_ID',
    'TIMESTORE_LISTEN',
    'TIMESTORE_DATA_DIR',
    'TIMESTORE_PEERS',
    'TIMESTORE_JOIN',
    'TIMESTORE_ADVERTISE',
  ])
    delete env[k];
  const nodes: LaunchedNode[] = ids.map((id, i) => {
    const dataDir = resolve(join(c.dataDir, id));
    mkdirSync(dataDir, { recursive: true });
    const args = [
      ...entry,
      'node',
      '--id',
      id,
      '--listen',
      `${c.host}:${c.basePort + i}`,
      '--data-dir',
      dataDir,
      '--peers',
      peers,
      '--election-timeout-ms',
      c.electionTimeoutMs,
      '--heartbeat-ms',
      c.heartbeatMs,
      '--log-level',
      c.logLevel,
    ];
    // Own process group: a terminal's Ctrl-C reaches the launcher only, which forwards it once.
    // The IPC channel is how a node learns that the launcher is gone (cmd/commands/node.ts).
    const child = spawn(process.execPath, args, {
      env,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      detached: true,
    });
    const prefix = (chunk: Buffer) =>
      chunk
        .toString()
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => `[${id}] ${l}\n`)
        .join('');
    child.stdout!.on('data', (b: Buffer) => out.write(prefix(b)));
    child.stderr!.on('data', (b: Buffer) => out.write(prefix(b)));
    return { id, url: urls[i]!, child };
  });
  const exits = nodes.map(
    (n) =>
      new Promise<void>((res) => {
        n.child.once('exit', (code, signal) => {
          out.write(`timestore cluster: ${n.id} exited (${signal ?? `code ${code}`})\n`);
          res();
        });
      }),
  );
  const exited = Promise.all(exits).then(() => {});
  let stopping: Promise<void> | null = null;
  const stop = (signal: NodeJS.Signals = 'SIGTERM') =>
    (stopping ??= (async () => {
      for (const n of nodes)
        if (n.child.exitCode === null && n.child.signalCode === null) n.child.kill(signal);
      const timer = setTimeout(() => {
        for (const n of nodes)
          if (n.child.exitCode === null && n.child.signalCode === null) n.child.kill('SIGKILL');
      }, 30_000);
      await exited;
      clearTimeout(timer);
    })());
  return { nodes, stop, exited };
}
