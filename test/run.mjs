// Runs every test file under test/ with node's built-in runner (TypeScript through tsx).
// Node 20's --test has no glob support, so the file list is built here.
// TIMESTORE_TEST_FILTER=substring narrows the run; slow suites are in the list like any other.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}
const filter = process.env.TIMESTORE_TEST_FILTER;
const files = walk('test')
  .filter((f) => !filter || f.includes(filter))
  .sort();
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
// The Kubernetes tests need a real kube-apiserver and etcd, built from Go modules and cached outside
// the tree. Build them here when a selected test needs them, so that `npm ci && npm test` on a fresh
// machine runs the whole suite (the first build takes 10-20 minutes and prints its progress).
if (files.some((f) => f.split(/[\\/]/).includes('k8s'))) {
  console.log(
    'test/k8s selected: making sure the Kubernetes control plane is built (cached after the first time)',
  );
  const b = spawnSync('bash', [join('test', 'k8s', 'build-control-plane.sh')], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (b.status !== 0) {
    console.error(
      `test/k8s/build-control-plane.sh failed (exit ${b.status}); the Kubernetes tests cannot run`,
    );
    process.exit(1);
  }
}
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
