// `timestore cluster`: run a local N-node cluster (what `npm start` runs).
import { formatFlagHelp } from '../../src/node/config.js';
import { clusterFlagSpecs, launchCluster, parseClusterArgs } from '../../src/node/cluster/launcher.js';
import type { Subcommand } from './types.js';

const help = `Usage: timestore cluster [flags]

Runs a local cluster: N node processes on consecutive ports (n1 on --base-port, n2 on the next, ...),
data under <data-dir>/n<i>, all founding voters. Prints the nodes' URLs and their logs (prefixed
[n1], [n2], ...). SIGINT/SIGTERM stop every node gracefully, then the launcher exits.

  timestore cluster --nodes 3 --base-port 5001 --data-dir ./data

Flags:
${formatFlagHelp(clusterFlagSpecs)}
`;

export const clusterCommand: Subcommand = {
  name: 'cluster',
  summary: 'Run a local N-node cluster (node processes on consecutive ports)',
  async run(argv) {
    const c = parseClusterArgs(argv);
    if ('help' in c) {
      process.stdout.write(help);
      return 0;
    }
    const cl = launchCluster(c);
    process.stdout.write(
      `timestore cluster: ${c.nodes} node${c.nodes === 1 ? '' : 's'}\n` +
        cl.nodes
          .map(
            (n) =>
              `  ${n.id}  ${n.url}   (status: ${n.url}/raft/status, API: ${n.url}/api/timeseries, docs: ${n.url}/swagger)\n`,
          )
          .join('') +
        'Press Ctrl-C to stop.\n',
    );
    let exitCode = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      process.stdout.write(`timestore cluster: ${sig}: stopping all nodes\n`);
      void cl.stop('SIGTERM');
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.on('exit', () => {
      // Never leave nodes behind.
      for (const n of cl.nodes)
        if (n.child.exitCode === null && n.child.signalCode === null) n.child.kill('SIGKILL');
    });
    // A node that dies on its own is reported; the others keep serving until a signal.
    cl.nodes.forEach((n) =>
      n.child.once('exit', (code) => {
        if (code !== 0 && code !== null) exitCode = 1;
      }),
    );
    await cl.exited;
    return exitCode;
  },
};
