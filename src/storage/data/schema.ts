// data.db schema. Measured against the alternatives in bench/ingest (docs/BENCHMARKS.md).
//
// points is clustered on (series, ts, id) so a device's time range is one contiguous b-tree range
// and the row needs no separate rowid or (device, ts) index. series is a small integer from
// devices; ts is stored relative to meta.ts_base (the first point's day) because SQLite stores an
// integer in 6 bytes when it fits 48 bits — µs since 1970 need 51 bits today, µs within ±4.4
// years of the base fit 6 — so every ts in both b-trees is 2 bytes smaller; values outside that
// window still store exactly, in 8 bytes. The id (16-byte blob for UUIDs) is the key of the one
// secondary index; UUIDv7 ids grow with time, so that index is appended to at its right edge.
// tags (interned: low cardinality) and attrs (JSON text) live in `extras`, keyed by id, and only
// for points that have them: a point without them costs nothing for them, not even the header
// byte a NULL column takes. value has REAL affinity, which SQLite stores as a small integer when
// the double is integral.
export const SCHEMA_VERSION = 1;

export const DDL = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS devices (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS tagsets (id INTEGER PRIMARY KEY, json TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS points (
  series INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  id NOT NULL,
  value REAL NOT NULL,
  PRIMARY KEY (series, ts, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS points_by_id ON points(id);
CREATE TABLE IF NOT EXISTS extras (id PRIMARY KEY, tagset INTEGER, attrs TEXT) WITHOUT ROWID;
`;
