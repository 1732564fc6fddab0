// Crash safety of snapshot creation and log compaction (issue #6): a node dies exactly while it
// copies data.db into a snapshot, before the copy is renamed into place, before raft.db is told,
// inside and after raft.db's compaction; after a restart the cluster must be consistent.
import { crashSuite, type CrashCase } from './harness.js';

const cases: CrashCase[] = [
  { failpoint: 'snapshot.mid-copy=crash@2', victim: 'leader', scenario: 'load' },
  { failpoint: 'snapshot.before-rename=crash', victim: 'follower', scenario: 'load' },
  { failpoint: 'snapshot.before-compact=crash', victim: 'leader', scenario: 'load' },
  { failpoint: 'compact.mid-transaction=crash', victim: 'follower', scenario: 'load' },
  { failpoint: 'compact.after=crash', victim: 'leader', scenario: 'load' },
];

// 300 entries kept below a snapshot: a restarted node recovers from its own files and the log
// (a snapshot from the leader would replace what is being tested).
crashSuite('a node killed at each point of snapshot creation and log compaction recovers consistently', {
  env: { TIMESTORE_SNAPSHOT_CATCHUP_ENTRIES: '300' },
  cases,
});
