// Configuration of `timestore node`: every flag of ARCHITECTURE.md's command line, from argv and from
// TIMESTORE_<FLAG> environment variables (the flag wins), validated with zod. Errors name the flag
// (and the variable) and say what was expected, because this is what an operator sees first when
// a pod crash-loops.
import { hostname } from 'node:os';
import { z } from 'zod';

// ---------------------------------------------------------------------------------------------
// Generic flag parsing (reused by other subcommands: cluster, operator, write, query, ...)
// ---------------------------------------------------------------------------------------------

export interface FlagSpec {
  /** Long name without dashes, e.g. "data-dir". Its variable is TIMESTORE_DATA_DIR. */
  name: string;
  description: string;
  /** Shown in --help, e.g. "host:port". Absent for booleans. */
  valueName?: string;
  boolean?: boolean;
  default?: string;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export function envVarName(flag: string): string {
  return `TIMESTORE_${flag.toUpperCase().replace(/-/g, '_')}`;
}

export interface ParsedFlags {
  /** flag name → raw string value ("true" for booleans), flags over environment. */
  values: Record<string, string>;
  /** Where each value came from, for error messages. */
  sources: Record<string, string>;
  /** Arguments that are not flags. */
  positionals: string[];
  help: boolean;
}

/**
 * Parse `--flag value`, `--flag=value` and boolean `--flag`; environment variables fill in the
 * flags not given. Unknown flags are an error (a typo must not silently fall back to a default).
 */
export function parseFlags(
  argv: string[],
  specs: FlagSpec[],
  env: NodeJS.ProcessEnv = process.env,
): ParsedFlags {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values: Record<string, string> = {};
  const sources: Record<string, string> = {};
  const positionals: string[] = [];
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (!arg.startsWith('--')) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const spec = byName.get(name);
    if (!spec) {
      const known = specs.map((s) => `--${s.name}`).join(', ');
      throw new ConfigError(`unknown flag --${name}; known flags: ${known}, --help`);
    }
    let value: string;
    if (eq !== -1) value = arg.slice(eq + 1);
    else if (spec.boolean) value = 'true';
    else {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) {
        throw new ConfigError(`flag --${name} needs a value (${spec.valueName ?? 'value'})`);
      }
      value = next;
      i++;
    }
    if (name in values) throw new ConfigError(`flag --${name} is given more than once`);
    values[name] = value;
    sources[name] = `--${name}`;
  }
  for (const spec of specs) {
    if (spec.name in values) continue;
    const v = env[envVarName(spec.name)];
    if (v !== undefined && v !== '') {
      values[spec.name] = v;
      sources[spec.name] = `${envVarName(spec.name)} (environment)`;
    } else if (spec.default !== undefined) {
      values[spec.name] = spec.default;
      sources[spec.name] = `--${spec.name} (default)`;
    }
  }
  return { values, sources, positionals, help };
}

export function formatFlagHelp(specs: FlagSpec[]): string {
  const rows = specs.map((s) => {
    const left = `  --${s.name}${s.valueName ? ` <${s.valueName}>` : ''}`;
    const def = s.default !== undefined ? ` (default: ${s.default})` : '';
    return `${left.padEnd(34)} ${s.description}${def}\n${' '.repeat(35)}env: ${envVarName(s.name)}`;
  });
  return rows.join('\n');
}

/** Turn zod issues on a flag object into one message naming each flag and its source. */
export function describeFlagIssues(error: z.ZodError, sources: Record<string, string>): string {
  const lines = error.issues.map((issue) => {
    const key = String(issue.path[0] ?? '');
    const flag = key ? sourceOf(key, sources) : 'configuration';
    return `${flag}: ${issue.message}`;
  });
  return `invalid configuration:\n  ${lines.join('\n  ')}`;
}

function sourceOf(key: string, sources: Record<string, string>): string {
  const flag = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  return sources[flag] ?? `--${flag}`;
}

// ---------------------------------------------------------------------------------------------
// timestore node
// ---------------------------------------------------------------------------------------------

export const nodeFlagSpecs: FlagSpec[] = [
  { name: 'id', valueName: 'id', description: 'Node id, unique in the cluster (default: the host name)' },
  {
    name: 'listen',
    valueName: 'host:port',
    description: 'Address to serve HTTP on (API and Raft peers)',
    default: '127.0.0.1:5001',
  },
  {
    name: 'data-dir',
    valueName: 'path',
    description: 'Directory for data.db and raft.db',
    default: './data',
  },
  {
    name: 'peers',
    valueName: 'id=url,...',
    description: 'Initial voters of a brand-new cluster, including this node',
  },
  { name: 'join', valueName: 'url', description: 'URL of a member of an existing cluster to join' },
  {
    name: 'advertise',
    valueName: 'url',
    description: 'URL peers use to reach this node (default: http://<listen>)',
  },
  {
    name: 'election-timeout-ms',
    valueName: 'ms',
    description: 'Raft election timeout (randomized in [t, 2t))',
    default: '1000',
  },
  {
    name: 'heartbeat-ms',
    valueName: 'ms',
    description: 'Raft heartbeat interval (must be below the election timeout)',
    default: '100',
  },
  {
    name: 'max-body-bytes',
    valueName: 'bytes',
    description: 'Largest accepted request body',
    default: String(4 * 1024 * 1024),
  },
  {
    name: 'body-timeout-ms',
    valueName: 'ms',
    description: 'Time a client has to send a whole request (headers and body); 408 beyond it',
    default: '120000',
  },
  {
    name: 'on-removed',
    valueName: 'exit|stay',
    description: 'What a node does once a membership change removed it: exit (after the grace) or stay',
    default: 'exit',
  },
  {
    name: 'removed-grace-ms',
    valueName: 'ms',
    description: 'How long a removed node keeps answering (status, probes) before it exits',
    default: '10000',
  },
  {
    name: 'cluster-secret',
    valueName: 'secret',
    description:
      'Shared secret peers send on /raft/* and /cluster/* (401 without it); at least 16 characters',
  },
  {
    name: 'log-level',
    valueName: 'level',
    description: 'fatal|error|warn|info|debug|trace|silent',
    default: 'info',
  },
];

const nodeIdPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const nodeIdSchema = z.string().regex(nodeIdPattern, {
  error:
    'expected a node id: 1-63 characters of letters, digits, ".", "_" or "-", starting with a letter or digit',
});

const httpUrl = z
  .string()
  .refine(
    (s) => {
      try {
        const u = new URL(s);
        return (u.protocol === 'http:' || u.protocol === 'https:') && u.host !== '';
      } catch {
        return false;
      }
    },
    { error: 'expected an http(s) URL such as http://10.0.0.1:5001' },
  )
  .transform((s) => s.replace(/\/+$/, ''));

const listenSchema = z.string().transform((s, ctx) => {
  // [v6addr]:port, host:port, or :port (all interfaces)
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    ctx.addIssue({
      code: 'custom',
      message: `expected host:port (e.g. 127.0.0.1:5001 or 0.0.0.0:5001), got "${s}"`,
    });
    return z.NEVER;
  }
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
});

const peersSchema = z.string().transform((s, ctx) => {
  const peers: Array<{ id: string; url: string }> = [];
  for (const part of s
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const eq = part.indexOf('=');
    const id = eq > 0 ? part.slice(0, eq) : '';
    const url = eq > 0 ? httpUrl.safeParse(part.slice(eq + 1)) : null;
    if (!nodeIdPattern.test(id) || !url?.success) {
      ctx.addIssue({
        code: 'custom',
        message: `expected id=url pairs separated by commas (n1=http://127.0.0.1:5001,...); "${part}" is not one`,
      });
      return z.NEVER;
    }
    if (peers.some((p) => p.id === id)) {
      ctx.addIssue({ code: 'custom', message: `node id "${id}" appears more than once` });
      return z.NEVER;
    }
    peers.push({ id, url: url.data });
  }
  if (peers.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'expected at least one id=url pair' });
    return z.NEVER;
  }
  return peers;
});

/** A flag holding a whole number in [min, max]; errors say the range. */
export const intFlag = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, { error: `expected a whole number between ${min} and ${max}` })
    .transform(Number)
    .pipe(
      z
        .number()
        .int()
        .min(min, { error: `expected at least ${min}` })
        .max(max, { error: `expected at most ${max}` }),
    );

export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof logLevels)[number];

const nodeFlagsSchema = z
  .object({
    id: nodeIdSchema,
    listen: listenSchema,
    dataDir: z.string().min(1, { error: 'expected a directory path' }),
    peers: peersSchema.optional(),
    join: httpUrl.optional(),
    advertise: httpUrl.optional(),
    electionTimeoutMs: intFlag(10, 600_000),
    heartbeatMs: intFlag(1, 60_000),
    maxBodyBytes: intFlag(1024, 1024 * 1024 * 1024),
    bodyTimeoutMs: intFlag(100, 3_600_000),
    onRemoved: z.enum(['exit', 'stay'], { error: 'expected exit or stay' }),
    removedGraceMs: intFlag(0, 3_600_000),
    clusterSecret: z
      .string()
      .min(16, { error: 'expected at least 16 characters (a random secret, e.g. openssl rand -hex 32)' })
      .regex(/^[\x21-\x7e]+$/, {
        error: 'expected printable ASCII without spaces (it travels in an HTTP header)',
      })
      .optional(),
    logLevel: z.enum(logLevels, { error: `expected one of ${logLevels.join(', ')}` }),
  })
  .superRefine((c, ctx) => {
    if (c.peers && c.join)
      ctx.addIssue({
        code: 'custom',
        path: ['join'],
        message: 'give either --peers (new cluster) or --join (existing cluster), not both',
      });
    if (c.peers && !c.peers.some((p) => p.id === c.id)) {
      ctx.addIssue({
        code: 'custom',
        path: ['peers'],
        message: `must include this node's id "${c.id}" (e.g. ${c.id}=http://...)`,
      });
    }
    if (c.heartbeatMs >= c.electionTimeoutMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['heartbeatMs'],
        message: `must be below --election-timeout-ms (${c.electionTimeoutMs})`,
      });
    }
  });

export interface NodeConfig {
  id: string;
  listen: { host: string; port: number };
  dataDir: string;
  /** Initial voters of a new cluster (includes this node); absent for a single node or --join. */
  peers?: Array<{ id: string; url: string }>;
  join?: string;
  /** URL peers use to reach this node (always set: derived from --listen when not given). */
  advertise: string;
  electionTimeoutMs: number;
  heartbeatMs: number;
  maxBodyBytes: number;
  /** A client that has not sent its whole request (headers and body) by then gets 408. */
  bodyTimeoutMs: number;
  /** Once a committed membership change removed this node: exit after removedGraceMs, or stay. */
  onRemoved: 'exit' | 'stay';
  removedGraceMs: number;
  /** When set, /raft/* and /cluster/* require it (Authorization: Bearer), and peers are sent it. */
  clusterSecret?: string;
  logLevel: LogLevel;
}

export interface NodeArgs {
  config: NodeConfig;
  help: boolean;
}

/** Parse `timestore node` argv (without the subcommand) and TIMESTORE_* variables. Throws ConfigError. */
export function parseNodeArgs(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): NodeArgs | { help: true } {
  const flags = parseFlags(argv, nodeFlagSpecs, env);
  if (flags.help) return { help: true };
  if (flags.positionals.length > 0) {
    throw new ConfigError(
      `unexpected argument "${flags.positionals[0]}"; timestore node takes only flags (see --help)`,
    );
  }
  const config = nodeConfigFromFlags(flags);
  return { config, help: false };
}

export function nodeConfigFromFlags(flags: ParsedFlags): NodeConfig {
  const v = flags.values;
  const raw = {
    id: v.id ?? hostname().split('.')[0],
    listen: v.listen,
    dataDir: v['data-dir'],
    peers: v.peers,
    join: v.join,
    advertise: v.advertise,
    electionTimeoutMs: v['election-timeout-ms'],
    heartbeatMs: v['heartbeat-ms'],
    maxBodyBytes: v['max-body-bytes'],
    bodyTimeoutMs: v['body-timeout-ms'],
    onRemoved: v['on-removed'],
    removedGraceMs: v['removed-grace-ms'],
    clusterSecret: v['cluster-secret'],
    logLevel: v['log-level'],
  };
  const r = nodeFlagsSchema.safeParse(raw);
  if (!r.success) throw new ConfigError(describeFlagIssues(r.error, flags.sources));
  const c = r.data;
  return {
    id: c.id,
    listen: c.listen,
    dataDir: c.dataDir,
    ...(c.peers ? { peers: c.peers } : {}),
    ...(c.join ? { join: c.join } : {}),
    advertise: c.advertise ?? defaultAdvertise(c.id, c.listen, c.peers),
    electionTimeoutMs: c.electionTimeoutMs,
    heartbeatMs: c.heartbeatMs,
    maxBodyBytes: c.maxBodyBytes,
    bodyTimeoutMs: c.bodyTimeoutMs,
    onRemoved: c.onRemoved,
    removedGraceMs: c.removedGraceMs,
    ...(c.clusterSecret ? { clusterSecret: c.clusterSecret } : {}),
    logLevel: c.logLevel,
  };
}

/** The URL peers should use: this node's own entry in --peers, else the listen address (a wildcard becomes the host name). */
function defaultAdvertise(
  id: string,
  listen: { host: string; port: number },
  peers?: Array<{ id: string; url: string }>,
): string {
  const own = peers?.find((p) => p.id === id);
  if (own) return own.url;
  const wildcard = listen.host === '0.0.0.0' || listen.host === '::' || listen.host === '';
  const host = wildcard ? hostname() : listen.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${listen.port}`;
}

/** Defaults for programmatic use (tests, `timestore cluster`): parse with no argv and no environment. */
export function defaultNodeConfig(
  overrides: Partial<NodeConfig> & Pick<NodeConfig, 'id' | 'dataDir'>,
): NodeConfig {
  const base = nodeConfigFromFlags(
    parseFlags(['--id', overrides.id, '--data-dir', overrides.dataDir], nodeFlagSpecs, {}),
  );
  return { ...base, ...overrides };
}
