// The public surface of the Raft core.
export * from './types.js';
export { RaftNode } from './raft-node.js';
export { MemoryStorage } from './memory-storage.js';
export { applyConfChange, decodeConfChange, encodeConfChange, validateConfChange } from './confchange.js';
export { entrySize } from './util.js';
