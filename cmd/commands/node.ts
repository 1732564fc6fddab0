// `timestore node`: run one database node until SIGTERM/SIGINT, then shut down gracefully.
import { formatFlagHelp, nodeFlagSpecs, parseNodeArgs } from '../../src/node/config.js';
import { exitOnSignals } from '../../src/node/http-server.js';
import { startNode } from '../../src/node/start.js';
import { createLogger } from '../../src/observability/logger.js';
import { startTracing } from '../../src/observability/tracing.js';
import type { Subcommand } from './types.js';

const help = `Usage: timestore node [flags]

Runs one TimeStore node: the HTTP API, and (with --peers or --join) Raft replication.

  timestore node --id n1 --listen 127.0.0.1:5001 --data-dir ./data/n1
  timestore node --id n1 --listen 127.0.0.1:5001 --data-dir ./data/n1 \\
    --peers n1=http://127.0.0.1:5001,n2=http://127.0.0.1:5002,n3=http://127.0.0.1:5003
  timestore node --id n4 --listen 127.0.0.1:5004 --data-dir ./data/n4 --join http://127.0.0.1:5001

With neither --peers nor --join the node is a single-node cluster of its own. On restart a node
trusts its persisted state. SIGTERM or SIGINT: stop accepting requests, finish those in flight,
close SQLite cleanly, exit 0.

Flags (a flag wins over its environment variable):
${formatFlagHelp(nodeFlagSpecs)}
`;

/**
 * A node started with an IPC channel (by `timestore cluster`) shuts down gracefully, as on SIGTERM,
 * once that channel closes: its launcher is gone, however it died (a SIGKILL runs no exit handler
 * of the launcher's). Without a channel (a node started by hand, a StatefulSet) nothing changes.
 */
function stopWithParent(logger: { warn(o: object, msg: string): void }): void {
  if (!process.channel) return;
  process.channel.unref(); // the channel alone must not keep the node running
  const stop = () => {
    logger.warn({ event: 'node.parent-gone' }, 'the launcher that started this node is gone; shutting down');
    process.kill(process.pid, 'SIGTERM');
  };
  if (!process.connected) stop();
  else process.once('disconnect', stop);
}

export const nodeCommand: Subcommand = {
  name: 'node',
  summary: 'Run a database node (single node, or a Raft member with --peers/--join)',
  async run(argv) {
    const args = parseNodeArgs(argv);
    if (args.help) {
      process.stdout.write(help);
      return 0;
    }
    const { config } = args;
    const logger = createLogger({ level: config.logLevel, nodeId: config.id });
    process.on('uncaughtException', (err) => {
      // State after an unexpected throw is unknown: log it and exit so the supervisor restarts us
      // from durable state, rather than serve on in a possibly broken state.
      logger.fatal({ err }, 'uncaught exception; exiting');
      process.exit(1);
    });
    process.on('unhandledRejection', (err) => {
      logger.fatal({ err }, 'unhandled promise rejection; exiting');
      process.exit(1);
    });
    // OpenTelemetry, from the standard OTEL_* environment (off when unset); once per process.
    const tracing = await startTracing({ serviceName: 'timestore', serviceInstanceId: config.id });
    if (tracing.enabled) logger.info({ event: 'otel.start' }, 'OpenTelemetry trace export on');
    const node = await startNode(config, { logger });
    exitOnSignals(() => node.close().finally(() => tracing.shutdown()), logger);
    stopWithParent(logger);
    // Keep running: the signal handler exits the process.
    return new Promise<number>(() => {});
  },
};
