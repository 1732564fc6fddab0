// Everything a node needs from observability, in one import. See docs/OBSERVABILITY.md for the wiring.
export * from './metrics.js';
export * from './probes.js';
export * from './logger.js';
export * from './tracing.js';
export * from './leader-label.js';
export * from './stale-leader-labels.js';
