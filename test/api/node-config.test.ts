// `timestore node` configuration: every flag of ARCHITECTURE.md, TIMESTORE_* variables, flag over
// variable, and errors that name the flag.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseNodeArgs, type NodeConfig } from '../../src/node/config.js';

const parse = (argv: string[], env: Record<string, string> = {}): NodeConfig => {
  const r = parseNodeArgs(argv, env);
  assert.ok(!r.help);
  return (r as { config: NodeConfig }).config;
};
const fails = (argv: string[], re: RegExp, env: Record<string, string> = {}) =>
  assert.throws(
    () => parseNodeArgs(argv, env),
    (err: unknown) => err instanceof ConfigError && re.test(err.message),
  );

describe('node configuration', () => {
  it('parses every flag', () => {
    const c = parse([
      '--id',
      'n1',
      '--listen',
      '127.0.0.1:5001',
      '--data-dir',
      './data/n1',
      '--peers',
      'n1=http://127.0.0.1:5001,n2=http://127.0.0.1:5002/,n3=http://127.0.0.1:5003',
      '--advertise',
      'http://10.0.0.1:5001',
      '--election-timeout-ms',
      '1500',
      '--heartbeat-ms',
      '150',
      '--max-body-bytes',
      '2048',
      '--body-timeout-ms',
      '2500',
      '--on-removed',
      'stay',
      '--removed-grace-ms',
      '0',
      '--log-level',
      'debug',
    ]);
    assert.deepEqual(c, {
      id: 'n1',
      listen: { host: '127.0.0.1', port: 5001 },
      dataDir: './data/n1',
      peers: [
        { id: 'n1', url: 'http://127.0.0.1:5001' },
        { id: 'n2', url: 'http://127.0.0.1:5002' },
        { id: 'n3', url: 'http://127.0.0.1:5003' },
      ],
      advertise: 'http://10.0.0.1:5001',
      electionTimeoutMs: 1500,
      heartbeatMs: 150,
      maxBodyBytes: 2048,
      bodyTimeoutMs: 2500,
      onRemoved: 'stay',
      removedGraceMs: 0,
      logLevel: 'debug',
    });
  });

  it('reads TIMESTORE_* variables; a flag wins over its variable', () => {
    const env = {
      TIMESTORE_ID: 'env-node',
      TIMESTORE_DATA_DIR: '/var/lib/ts',
      TIMESTORE_LISTEN: '0.0.0.0:7000',
      TIMESTORE_JOIN: 'http://seed:5001',
      TIMESTORE_MAX_BODY_BYTES: '4096',
    };
    const c = parse(['--listen=127.0.0.1:7001'], env);
    assert.equal(c.id, 'env-node');
    assert.equal(c.dataDir, '/var/lib/ts');
    assert.deepEqual(c.listen, { host: '127.0.0.1', port: 7001 });
    assert.equal(c.join, 'http://seed:5001');
    assert.equal(c.maxBodyBytes, 4096);
    assert.equal(c.advertise, 'http://127.0.0.1:7001');
  });

  it('has defaults for a single node', () => {
    const c = parse(['--id', 'solo']);
    assert.deepEqual(c.listen, { host: '127.0.0.1', port: 5001 });
    assert.equal(c.peers, undefined);
    assert.equal(c.join, undefined);
    assert.equal(c.advertise, 'http://127.0.0.1:5001');
    assert.equal(c.logLevel, 'info');
  });

  it('advertises its own --peers URL by default', () => {
    assert.equal(
      parse(['--id', 'n2', '--listen', '0.0.0.0:5002', '--peers', 'n1=http://a:5001,n2=http://b:5002'])
        .advertise,
      'http://b:5002',
    );
  });

  it('names the bad flag and what was expected', () => {
    fails(['--listen', 'localhost'], /--listen: expected host:port/);
    fails(['--listen', '1.2.3.4:99999'], /--listen/);
    fails(['--id', 'bad id!'], /--id: expected a node id/);
    fails(['--id', 'n1', '--peers', 'n1=http://a:1,oops'], /--peers: expected id=url pairs.*"oops"/);
    fails(['--id', 'n1', '--peers', 'n2=http://a:1'], /--peers: must include this node's id "n1"/);
    fails(['--id', 'n1', '--peers', 'n1=ftp://a:1'], /--peers/);
    fails(['--id', 'n1', '--peers', 'n1=http://a:1,n1=http://b:1'], /appears more than once/);
    fails(['--id', 'n1', '--join', 'not a url'], /--join: expected an http\(s\) URL/);
    fails(['--id', 'n1', '--peers', 'n1=http://a:1', '--join', 'http://b:1'], /not both/);
    fails(
      ['--id', 'n1', '--heartbeat-ms', '500', '--election-timeout-ms', '400'],
      /--heartbeat-ms: must be below --election-timeout-ms/,
    );
    fails(['--id', 'n1', '--max-body-bytes', '1MB'], /--max-body-bytes: expected a whole number/);
    fails(['--id', 'n1', '--log-level', 'loud'], /--log-level: expected one of/);
    fails(['--id', 'n1', '--data-dirr', 'x'], /unknown flag --data-dirr/);
    fails(['--id'], /--id needs a value/);
    fails(['--id', 'a', '--id', 'b'], /more than once/);
    fails(['--id', 'n1', 'stray'], /unexpected argument "stray"/);
  });

  it('names the environment variable when the bad value came from it', () => {
    fails(['--id', 'n1'], /TIMESTORE_HEARTBEAT_MS \(environment\): expected a whole number/, {
      TIMESTORE_HEARTBEAT_MS: 'fast',
    });
  });

  it('--help is reported, not an error', () => {
    assert.deepEqual(parseNodeArgs(['--help'], {}), { help: true });
  });
});
