// The public surface the node codes against (src/raft/index.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as raft from '../../src/raft/index.js';
import type { RaftNodeApi } from '../../src/raft/index.js';
import { baseConfig } from './harness.js';

test('index.ts exports the core, the storage, the errors and the conf-change helpers', () => {
  for (const name of [
    'RaftNode',
    'MemoryStorage',
    'CompactedError',
    'applyConfChange',
    'encodeConfChange',
    'decodeConfChange',
    'validateConfChange',
    'entrySize',
  ]) {
    assert.ok(name in raft, `missing export ${name}`);
  }
  const node: RaftNodeApi = new raft.RaftNode(baseConfig('a', new raft.MemoryStorage(['a'])));
  for (const m of [
    'tick',
    'step',
    'propose',
    'proposeConfChange',
    'readIndex',
    'transferLeadership',
    'campaign',
    'hasReady',
    'ready',
    'advance',
    'reportUnreachable',
    'reportSnapshot',
    'status',
  ] as const) {
    assert.equal(typeof node[m], 'function', m);
  }
});

test('ready() refuses to hand out a second Ready before advance()', () => {
  const node = new raft.RaftNode(baseConfig('a', new raft.MemoryStorage(['a'])));
  node.campaign();
  const rd = node.ready();
  assert.throws(() => node.ready(), /before advance/);
  node.advance(rd);
});

test('invalid configurations are refused', () => {
  const s = new raft.MemoryStorage(['a']);
  assert.throws(
    () => new raft.RaftNode(baseConfig('a', s, { electionTick: 1, heartbeatTick: 1 })),
    /electionTick/,
  );
  assert.throws(
    () => new raft.RaftNode(baseConfig('a', s, { readOnly: 'lease', checkQuorum: false })),
    /lease/,
  );
  assert.throws(() => new raft.RaftNode(baseConfig('a', s, { maxInflightMsgs: 0 })), /maxInflightMsgs/);
});

test('conf changes round-trip through their entry encoding, context included', () => {
  const cc = { type: 'addLearner' as const, nodeId: 'n4', context: 'http://n4:5004' };
  assert.deepEqual(raft.decodeConfChange(raft.encodeConfChange(cc)), cc);
  assert.throws(() => raft.decodeConfChange('{"type":"nope","nodeId":"x"}'), /malformed/);
  assert.deepEqual(
    raft.applyConfChange({ voters: ['a'], learners: ['b'] }, { type: 'promote', nodeId: 'b' }),
    {
      voters: ['a', 'b'],
      learners: [],
    },
  );
});
