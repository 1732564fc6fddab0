// `timestore status`: what a node says about itself (/raft/status when the node runs Raft, else /livez).
import { formatFlagHelp, parseFlags, type FlagSpec } from '../../src/node/config.js';
import { baseUrl, call, HttpError, runClient, urlFlag } from './client.js';
import type { Subcommand } from './types.js';

const specs: FlagSpec[] = [urlFlag];

export const statusCommand: Subcommand = {
  name: 'status',
  summary: "Show a node's status (Raft role, leader, indices) through the REST API",
  run: (argv) =>
    runClient(async () => {
      const flags = parseFlags(argv, specs);
      if (flags.help) {
        process.stdout.write(`Usage: timestore status [--url URL]\n\nFlags:\n${formatFlagHelp(specs)}\n`);
        return;
      }
      const base = baseUrl(flags.values.url!);
      let res;
      try {
        res = await call('GET', `${base}/raft/status`);
      } catch (err) {
        if (!(err instanceof HttpError) || !/HTTP 404/.test(err.message)) throw err;
        res = await call('GET', `${base}/livez`);
      }
      process.stdout.write(JSON.stringify(res.json, null, 2) + '\n');
    }),
};
