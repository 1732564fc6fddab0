// Reusable helpers for integration tests (one import for test files).
export * from './ports.js';
export * from './tmp.js';
export * from './process.js';
export * from './http.js';
export * from './node.js';
export * from './cluster.js';
