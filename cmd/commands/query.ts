// `timestore query`: read entries (or aggregates) through the REST API, one JSON object per line.
import { formatFlagHelp, parseFlags, type FlagSpec } from '../../src/node/config.js';
import { baseUrl, call, runClient, urlFlag } from './client.js';
import type { Subcommand } from './types.js';

const specs: FlagSpec[] = [
  urlFlag,
  { name: 'device', valueName: 'id', description: 'Only this device (required for --aggregate)' },
  { name: 'from', valueName: 'time', description: 'Inclusive start (RFC 3339)' },
  { name: 'to', valueName: 'time', description: 'Exclusive end (RFC 3339)' },
  { name: 'order', valueName: 'asc|desc', description: 'Time order' },
  { name: 'limit', valueName: 'n', description: 'Page size' },
  { name: 'aggregate', valueName: 'fns', description: 'e.g. avg,max (with --interval)' },
  { name: 'interval', valueName: 'duration', description: 'Bucket width, e.g. 1h' },
  { name: 'consistency', valueName: 'level', description: 'linearizable|leader|none' },
  { name: 'all', boolean: true, description: 'Follow cursors until the last page' },
];

const help = `Usage: timestore query [flags]

  timestore query --device sensor-1 --from 2024-05-01T00:00:00Z --all
  timestore query --device sensor-1 --aggregate avg,max --interval 1h

Prints one JSON object per line.

Flags:
${formatFlagHelp(specs)}
`;

export const queryCommand: Subcommand = {
  name: 'query',
  summary: 'Read entries or aggregates through the REST API (NDJSON output)',
  run: (argv) =>
    runClient(async () => {
      const flags = parseFlags(argv, specs);
      if (flags.help) {
        process.stdout.write(help);
        return;
      }
      const v = flags.values;
      const base = baseUrl(v.url!);
      const path =
        v.device !== undefined ? `/api/timeseries/device/${encodeURIComponent(v.device)}` : '/api/timeseries';
      const params = new URLSearchParams();
      for (const k of ['from', 'to', 'order', 'limit', 'aggregate', 'interval', 'consistency'])
        if (v[k] !== undefined) params.set(k, v[k]!);
      let cursor: string | null = null;
      do {
        if (cursor) params.set('cursor', cursor);
        const qs = params.toString();
        const res = await call('GET', `${base}${path}${qs ? `?${qs}` : ''}`);
        for (const item of (res.json as unknown[]) ?? []) process.stdout.write(JSON.stringify(item) + '\n');
        cursor = res.headers.get('x-next-cursor');
      } while (cursor && v.all === 'true');
    }),
};
