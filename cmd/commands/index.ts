// The subcommand table of `timestore`. Order is the order of `timestore --help`.
import type { Subcommand } from './types.js';
import { nodeCommand } from './node.js';
import { writeCommand } from './write.js';
import { queryCommand } from './query.js';
import { statusCommand } from './status.js';
import { clusterCommand } from './cluster.js';

export const commands: Subcommand[] = [
  nodeCommand,
  clusterCommand,
  writeCommand,
  queryCommand,
  statusCommand,
];

export type { Subcommand } from './types.js';
