// `timestore write`: write one entry from flags, or a batch from a file/stdin (JSON array or NDJSON).
import { readFileSync } from 'node:fs';
import { ConfigError, formatFlagHelp, parseFlags, type FlagSpec } from '../../src/node/config.js';
import { baseUrl, call, runClient, urlFlag } from './client.js';
import type { Subcommand } from './types.js';

const specs: FlagSpec[] = [
  urlFlag,
  { name: 'device', valueName: 'id', description: 'Device id of the entry' },
  { name: 'value', valueName: 'number', description: 'Value of the entry' },
  { name: 'timestamp', valueName: 'rfc3339', description: 'Time of the entry (default: now)' },
  { name: 'id', valueName: 'uuid', description: 'Entry id (default: generated; an existing id is replaced)' },
  { name: 'tags', valueName: 'k=v,...', description: 'Tags of the entry' },
  {
    name: 'file',
    valueName: 'path|-',
    description: 'Write a batch from a file or stdin ("-"): a JSON array or NDJSON',
  },
];

const help = `Usage: timestore write [flags]

  timestore write --device sensor-1 --value 21.5
  timestore write --file points.ndjson
  cat points.json | timestore write --file -

Flags:
${formatFlagHelp(specs)}
`;

export const writeCommand: Subcommand = {
  name: 'write',
  summary: 'Write an entry (or a batch from a file) through the REST API',
  run: (argv) =>
    runClient(async () => {
      const flags = parseFlags(argv, specs);
      if (flags.help) {
        process.stdout.write(help);
        return;
      }
      const v = flags.values;
      const url = `${baseUrl(v.url!)}/api/timeseries`;
      let body: { text: string; contentType: string };
      if (v.file !== undefined) {
        const text = readFileSync(v.file === '-' ? 0 : v.file, 'utf8');
        const isArray = text.trimStart().startsWith('[');
        body = { text, contentType: isArray ? 'application/json' : 'application/x-ndjson' };
      } else {
        if (v.device === undefined || v.value === undefined)
          throw new ConfigError('give --device and --value (or --file); see timestore write --help');
        const value = Number(v.value);
        if (v.value.trim() === '' || !Number.isFinite(value))
          throw new ConfigError(`--value: expected a finite number; got "${v.value}"`);
        const entry: Record<string, unknown> = {
          deviceId: v.device,
          timestamp: v.timestamp ?? new Date().toISOString(),
          value,
        };
        if (v.id !== undefined) entry.id = v.id;
        if (v.tags !== undefined) {
          const tags: Record<string, string> = {};
          for (const pair of v.tags.split(',').filter(Boolean)) {
            const eq = pair.indexOf('=');
            if (eq <= 0)
              throw new ConfigError(`--tags: expected k=v pairs separated by commas; "${pair}" is not one`);
            tags[pair.slice(0, eq)] = pair.slice(eq + 1);
          }
          entry.tags = tags;
        }
        body = { text: JSON.stringify(entry), contentType: 'application/json' };
      }
      const res = await call('POST', url, body);
      process.stdout.write(JSON.stringify(res.json, null, 2) + '\n');
    }),
};
