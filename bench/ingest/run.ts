// Ingest benchmark: the two reference schemas from issue 2 and the TimeStore engine, side by side
// in one run on the same rows. Usage:
//   npm run bench:ingest -- [--rows 1000000] [--batch 1000] [--devices 100] [--variants A,B,ours,ours-v4] [--dir DIR] [--json]
//
// A        rowid table, random-UUID (v4) TEXT primary key, index on (device_id, ts)
// B        WITHOUT ROWID table clustered on (device_id, ts, id), id as UUID TEXT; it has no id lookup
// ours     openDataStore().applyBatch: one command of `batch` puts per transaction, UUIDv7 ids
// ours-v4  the same engine fed random v4 ids, as clients that bring their own UUIDs would
// Optional, to separate the schema from the engine's I/O settings (1 KiB pages, 8 MiB WAL):
// B-small  B with the engine's page size and checkpoint interval
// ours-4k  the engine with SQLite's defaults (4 KiB pages, 1000-page checkpoints)
//
// Besides wall-clock rows/s, which moves with whatever else runs on a shared machine, each
// variant reports CPU time per row (user+sys of this process) and bytes written to storage per
// row (Linux /proc/self/io write_bytes), which depend much less on neighbours.
//
// The references get integer µs timestamps and no tags/attributes columns, which is the smallest
// and fastest form of them; the engine carries its (NULL) tags/attributes columns. Every variant
// uses WAL and synchronous=FULL and writes `batch` rows per transaction. Rows are interleaved
// across devices (row i belongs to device i % devices), as concurrent devices report. rows/s is
// wall time from the first insert to the last commit; bytes/row is the size of the database file
// after a full checkpoint, divided by rows.
import Database from 'better-sqlite3';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDataStore } from '../../src/storage/data/index.js';
import { createUuidV7Generator } from '../../src/tsdb/uuidv7.js';
import type { Command, Point } from '../../src/tsdb/model.js';

interface Args {
  rows: number;
  batch: number;
  devices: number;
  variants: string[];
  dir: string | undefined;
  json: boolean;
}

const ALL_VARIANTS = ['A', 'B', 'ours', 'ours-v4', 'B-small', 'ours-4k'];

function parseArgs(argv: string[]): Args {
  const args: Args = {
    rows: 1_000_000,
    batch: 1000,
    devices: 100,
    variants: ['A', 'B', 'ours', 'ours-v4'],
    dir: undefined,
    json: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const int = (name: string) => {
      const v = Number(value());
      if (!Number.isSafeInteger(v) || v < 1) throw new Error(`${name} must be a positive integer`);
      return v;
    };
    if (flag === '--rows') args.rows = int('--rows');
    else if (flag === '--batch') args.batch = int('--batch');
    else if (flag === '--devices') args.devices = int('--devices');
    else if (flag === '--variants') args.variants = value().split(',');
    else if (flag === '--dir') args.dir = value();
    else if (flag === '--json') args.json = true;
    else
      throw new Error(
        `unknown flag ${flag}; expected --rows N, --batch N, --devices N, --variants ${ALL_VARIANTS.join(',')}, --dir DIR, --json`,
      );
  }
  for (const v of args.variants) {
    if (!ALL_VARIANTS.includes(v))
      throw new Error(`unknown variant ${v}; expected one of ${ALL_VARIANTS.join(', ')}`);
  }
  return args;
}

// Seeded so every run (and every variant) sees identical rows.
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Row {
  device: string;
  ts: number;
  value: number;
  v7: string;
  v4: string;
}

const T0_MS = Date.UTC(2026, 0, 1);

function makeRows(n: number, devices: number): Row[] {
  const rnd = prng(20260101);
  const bytes = new Uint8Array(16);
  const fill = (b: Uint8Array) => {
    for (let i = 0; i < b.length; i++) b[i] = (rnd() * 256) | 0;
  };
  let clockMs = T0_MS;
  const v7 = createUuidV7Generator({ now: () => clockMs, random: fill });
  const names = Array.from({ length: devices }, (_, d) => `device-${String(d).padStart(3, '0')}`);
  const rows: Row[] = new Array(n);
  for (let i = 0; i < n; i++) {
    // ids are minted at ingest time: about 10 rows per millisecond
    if (i % 10 === 0) clockMs++;
    fill(bytes);
    bytes[6] = (bytes[6]! & 0x0f) | 0x40;
    bytes[8] = (bytes[8]! & 0x3f) | 0x80;
    const h = Buffer.from(bytes).toString('hex');
    rows[i] = {
      device: names[i % devices]!,
      // each device reports once a second, with sub-second jitter at µs precision
      ts: T0_MS * 1000 + Math.floor(i / devices) * 1_000_000 + Math.floor(rnd() * 1_000_000),
      value: Math.round(rnd() * 100_000) / 100,
      v7: v7(),
      v4: `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`,
    };
  }
  return rows;
}

interface Result {
  variant: string;
  rows: number;
  seconds: number;
  rowsPerSec: number;
  bytes: number;
  bytesPerRow: number;
  cpuMicrosPerRow: number;
  writtenBytesPerRow: number | null;
  reads?: Record<string, number> | undefined;
}

function writtenBytes(): number | null {
  try {
    const m = /write_bytes: (\d+)/.exec(readFileSync('/proc/self/io', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

interface Meter {
  t0: bigint;
  cpu0: NodeJS.CpuUsage;
  w0: number | null;
}

function startMeter(): Meter {
  return { w0: writtenBytes(), cpu0: process.cpuUsage(), t0: process.hrtime.bigint() };
}

/** Stops at the last commit; the checkpoint/close that follows is for measuring size only. */
function stopMeter(m: Meter): { seconds: number; cpuMicros: number; written: number | null } {
  const seconds = Number(process.hrtime.bigint() - m.t0) / 1e9;
  const cpu = process.cpuUsage(m.cpu0);
  const w1 = writtenBytes();
  return {
    seconds,
    cpuMicros: cpu.user + cpu.system,
    written: m.w0 === null || w1 === null ? null : w1 - m.w0,
  };
}

function openRef(path: string, small: boolean): Database.Database {
  const db = new Database(path);
  if (small) db.pragma('page_size = 1024');
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  if (small) db.pragma('wal_autocheckpoint = 8192');
  return db;
}

function finishRef(db: Database.Database, path: string): number {
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  return statSync(path).size;
}

function runReference(variant: 'A' | 'B' | 'B-small', rows: Row[], batch: number, path: string): Result {
  const db = openRef(path, variant === 'B-small');
  if (variant === 'A') {
    db.exec(`CREATE TABLE timeseries (id TEXT PRIMARY KEY, device_id TEXT NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL);
             CREATE INDEX timeseries_device_ts ON timeseries(device_id, ts);`);
  } else {
    db.exec(`CREATE TABLE timeseries (device_id TEXT NOT NULL, ts INTEGER NOT NULL, id TEXT NOT NULL, value REAL NOT NULL,
             PRIMARY KEY (device_id, ts, id)) WITHOUT ROWID;`);
  }
  const insert = db.prepare('INSERT INTO timeseries (id, device_id, ts, value) VALUES (?, ?, ?, ?)');
  const useV4 = variant === 'A';
  const tx = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const r = rows[i]!;
      insert.run(useV4 ? r.v4 : r.v7, r.device, r.ts, r.value);
    }
  });
  const meter = startMeter();
  for (let i = 0; i < rows.length; i += batch) tx(i, Math.min(i + batch, rows.length));
  const m = stopMeter(meter);
  const bytes = finishRef(db, path);
  return result(variant, rows.length, m, bytes);
}

function runOurs(variant: 'ours' | 'ours-v4' | 'ours-4k', rows: Row[], batch: number, path: string): Result {
  // Commands are built before the clock starts, as the node receives them already parsed.
  const commands: Command[] = [];
  for (let i = 0; i < rows.length; i += batch) {
    const ops = [];
    for (let k = i; k < Math.min(i + batch, rows.length); k++) {
      const r = rows[k]!;
      const point: Point = {
        id: variant === 'ours-v4' ? r.v4 : r.v7,
        deviceId: r.device,
        ts: r.ts,
        value: r.value,
      };
      ops.push({ op: 'put' as const, point });
    }
    commands.push({ ops });
  }
  const store = openDataStore(
    path,
    variant === 'ours-4k' ? { pageSize: 4096, walAutocheckpointPages: 1000 } : {},
  );
  const meter = startMeter();
  for (let c = 0; c < commands.length; c++) store.applyBatch([{ index: c + 1, command: commands[c]! }]);
  const m = stopMeter(meter);
  const count = store.count();
  if (count !== rows.length) throw new Error(`${variant}: stored ${count} rows, expected ${rows.length}`);
  const reads = variant === 'ours' ? measureReads(store, rows) : undefined;
  store.close(); // the last connection closing checkpoints the WAL into data.db
  return { ...result(variant, rows.length, m, statSync(path).size), reads };
}

/** Read latencies on the freshly written store: what the API's GET endpoints will cost. */
function measureReads(store: ReturnType<typeof openDataStore>, rows: Row[]): Record<string, number> {
  const rnd = prng(7);
  const pick = () => rows[Math.floor(rnd() * rows.length)]!;
  const time = (n: number, fn: () => void) => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn();
    return Number(process.hrtime.bigint() - t0) / 1e3 / n;
  };
  const HOUR = 3_600_000_000;
  return {
    getByIdMicros: time(20_000, () => {
      if (store.get(pick().v7) === undefined) throw new Error('get missed');
    }),
    devicePage100Micros: time(2_000, () => {
      const r = pick();
      store.query({ deviceId: r.device, from: r.ts, order: 'asc', limit: 100 });
    }),
    allDevicesPage100Micros: time(200, () => {
      store.query({ from: pick().ts, order: 'desc', limit: 100 });
    }),
    aggregateHourByMinuteMicros: time(500, () => {
      const r = pick();
      store.aggregate({
        deviceId: r.device,
        from: r.ts - HOUR,
        to: r.ts,
        bucket: 60_000_000,
        fns: ['count', 'avg', 'min', 'max', 'last'],
        order: 'asc',
        limit: 60,
      });
    }),
  };
}

function result(variant: string, rows: number, m: ReturnType<typeof stopMeter>, bytes: number): Result {
  return {
    variant,
    rows,
    seconds: m.seconds,
    rowsPerSec: rows / m.seconds,
    bytes,
    bytesPerRow: bytes / rows,
    cpuMicrosPerRow: m.cpuMicros / rows,
    writtenBytesPerRow: m.written === null ? null : m.written / rows,
  };
}

function sqliteVersion(): string {
  const db = new Database(':memory:');
  try {
    return db.prepare('SELECT sqlite_version()').pluck().get() as string;
  } finally {
    db.close();
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const dir = args.dir ?? mkdtempSync(join(tmpdir(), 'timestore-bench-'));
  const env = {
    date: new Date().toISOString(),
    nproc: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    sqlite: sqliteVersion(),
  };
  const log = (s: string) => {
    if (!args.json) console.log(s);
  };
  log(`ingest bench: ${args.rows} rows, ${args.batch}-row transactions, ${args.devices} devices`);
  log(`${env.date}  nproc=${env.nproc}  cpu=${env.cpu}  node=${env.node}  sqlite=${env.sqlite}  dir=${dir}`);
  const rows = makeRows(args.rows, args.devices);
  const results: Result[] = [];
  try {
    for (const v of args.variants) {
      const path = join(dir, `${v}.db`);
      for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });
      const r =
        v === 'A' || v === 'B' || v === 'B-small'
          ? runReference(v, rows, args.batch, path)
          : runOurs(v as 'ours' | 'ours-v4' | 'ours-4k', rows, args.batch, path);
      results.push(r);
      const written = r.writtenBytesPerRow === null ? 'n/a' : r.writtenBytesPerRow.toFixed(0);
      log(
        `${v.padEnd(8)} ${Math.round(r.rowsPerSec).toString().padStart(8)} rows/s  ${r.bytesPerRow.toFixed(1).padStart(6)} bytes/row` +
          `  ${r.cpuMicrosPerRow.toFixed(2).padStart(6)} CPU µs/row  ${written.padStart(5)} written bytes/row  (${r.seconds.toFixed(1)} s, ${(r.bytes / 1e6).toFixed(1)} MB)`,
      );
      if (r.reads) {
        log(
          `         reads: ${Object.entries(r.reads)
            .map(([k, v]) => `${k.replace(/Micros$/, '')} ${v.toFixed(0)} µs`)
            .join(', ')}`,
        );
      }
      for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });
    }
  } finally {
    if (args.dir === undefined) rmSync(dir, { recursive: true, force: true });
  }
  const byName = new Map(results.map((r) => [r.variant, r]));
  const ratios: Record<string, { speedup: number; sizeRatio: number; cpuRatio: number }> = {};
  for (const ours of ['ours', 'ours-v4', 'ours-4k']) {
    for (const ref of ['A', 'B', 'B-small']) {
      const o = byName.get(ours);
      const f = byName.get(ref);
      if (o && f) {
        ratios[`${ours} vs ${ref}`] = {
          speedup: o.rowsPerSec / f.rowsPerSec,
          sizeRatio: o.bytesPerRow / f.bytesPerRow,
          cpuRatio: o.cpuMicrosPerRow / f.cpuMicrosPerRow,
        };
      }
    }
  }
  for (const [k, r] of Object.entries(ratios)) {
    log(
      `${k.padEnd(17)} ${r.speedup.toFixed(2)}x rows/s, ${r.sizeRatio.toFixed(2)}x bytes/row, ${r.cpuRatio.toFixed(2)}x CPU/row`,
    );
  }
  if (args.json)
    console.log(
      JSON.stringify({
        env,
        args: { rows: args.rows, batch: args.batch, devices: args.devices },
        results,
        ratios,
      }),
    );
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
