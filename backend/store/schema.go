package store

// schemaVersion is the PRAGMA user_version this build writes. migrations[i]
// moves a store from version i to i+1.
const schemaVersion = 5

// minReadVersion is the oldest schema a read-only open reads as it is:
// version 4 changed only how rows are keyed, not the columns reads use.
const minReadVersion = 3

// fastReadVersion is the last schema that changed how reads perform (4:
// keyed lookups); version 5 changed only how writes are journalled.
const fastReadVersion = 4

var migrations = []string{
	// 0 → 1: the initial schema. Chunk metadata and chunk bytes live in
	// separate tables so that metadata scans never touch blob pages.
	`
CREATE TABLE meta(
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;

-- Trained zstd dictionaries; chunks.dict refers to id (0 = none).
CREATE TABLE dicts(
	id      INTEGER PRIMARY KEY,
	name    TEXT NOT NULL,
	version TEXT NOT NULL,
	params  TEXT NOT NULL,
	hash    BLOB NOT NULL,
	data    BLOB NOT NULL,
	created INTEGER NOT NULL,
	stats   TEXT NOT NULL DEFAULT '{}',
	UNIQUE(name, version)
);

CREATE TABLE chunk_data(
	id   INTEGER PRIMARY KEY,
	data BLOB NOT NULL
);

-- A chunk: content address, raw size, how it is stored. ref is the content
-- address of a reference chunk used as a raw dictionary (delta drying).
CREATE TABLE chunks(
	hash    BLOB PRIMARY KEY,
	size    INTEGER NOT NULL,
	codec   INTEGER NOT NULL,
	dict    INTEGER NOT NULL DEFAULT 0,
	ref     BLOB,
	stored  INTEGER NOT NULL,
	data_id INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX chunks_by_dict ON chunks(dict) WHERE dict != 0;

-- A file: content address (SHA-256 of its bytes), size, sealed chunk list.
CREATE TABLE files(
	hash   BLOB PRIMARY KEY,
	size   INTEGER NOT NULL,
	chunks BLOB NOT NULL
) WITHOUT ROWID;

-- A directory: address of its canonical listing; data is a codec byte and
-- the (possibly zstd-compressed) listing.
CREATE TABLE dirs(
	hash BLOB PRIMARY KEY,
	data BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE roots(
	id      INTEGER PRIMARY KEY,
	name    TEXT NOT NULL,
	version TEXT NOT NULL,
	top     BLOB NOT NULL, -- the top directory's entry, encoded as a one-entry listing
	created INTEGER NOT NULL,
	source  TEXT NOT NULL,
	files   INTEGER NOT NULL,
	bytes   INTEGER NOT NULL,
	stored  INTEGER NOT NULL, -- bytes its ingest added to the store
	gen     INTEGER NOT NULL,
	UNIQUE(name, version)
);

-- What ingest saw of each source directory of a name's newest version, so
-- that unchanged files are reused without reading them. Rows of an ingest
-- that never committed are dropped by the next commit of that name.
CREATE TABLE ingest_index(
	name TEXT NOT NULL,
	gen  INTEGER NOT NULL,
	path BLOB NOT NULL,
	data BLOB NOT NULL,
	PRIMARY KEY(name, gen, path)
) WITHOUT ROWID;
`,
	// 1 → 2: delta drying. A Delta chunk is compressed against its ref
	// chunk. depth is its chain length (0 for chunks without a ref) and
	// always exceeds its ref's, so chains end; deps counts the chunks whose
	// ref it is, kept by triggers. The triggers also refuse a ref that is
	// missing or not shallower, a deeper depth for a chunk with dependants,
	// and deleting a chunk with dependants.
	`
ALTER TABLE chunks ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chunks ADD COLUMN deps INTEGER NOT NULL DEFAULT 0;
CREATE TRIGGER chunks_ref_check BEFORE INSERT ON chunks WHEN NEW.ref IS NOT NULL BEGIN
	SELECT RAISE(ABORT, 'reference chunk missing or not shallower')
	WHERE NOT EXISTS (SELECT 1 FROM chunks WHERE hash = NEW.ref AND depth < NEW.depth);
END;
CREATE TRIGGER chunks_ref_recheck BEFORE UPDATE OF ref, depth ON chunks BEGIN
	SELECT RAISE(ABORT, 'reference chunk missing or not shallower')
	WHERE NEW.ref IS NOT NULL AND NOT EXISTS (SELECT 1 FROM chunks WHERE hash = NEW.ref AND depth < NEW.depth);
	SELECT RAISE(ABORT, 'a reference chunk cannot get deeper')
	WHERE NEW.depth > OLD.depth AND OLD.deps > 0;
END;
CREATE TRIGGER chunks_ref_add AFTER INSERT ON chunks WHEN NEW.ref IS NOT NULL BEGIN
	UPDATE chunks SET deps = deps + 1 WHERE hash = NEW.ref;
END;
CREATE TRIGGER chunks_ref_change AFTER UPDATE OF ref ON chunks WHEN OLD.ref IS NOT NEW.ref BEGIN
	UPDATE chunks SET deps = deps - 1 WHERE hash = OLD.ref;
	UPDATE chunks SET deps = deps + 1 WHERE hash = NEW.ref;
END;
CREATE TRIGGER chunks_ref_drop AFTER DELETE ON chunks WHEN OLD.ref IS NOT NULL BEGIN
	UPDATE chunks SET deps = deps - 1 WHERE hash = OLD.ref;
END;
CREATE TRIGGER chunks_ref_keep BEFORE DELETE ON chunks WHEN OLD.deps > 0 BEGIN
	SELECT RAISE(ABORT, 'chunk is the reference of other chunks');
END;
`,
	// 2 → 3: leases (gc.go). A running ingest or garbage collection holds
	// one, naming its process (pid, start time in clock ticks since boot,
	// boot id) so that one left by a killed process is recognised as stale.
	`
CREATE TABLE leases(
	id      INTEGER PRIMARY KEY,
	kind    TEXT NOT NULL, -- 'ingest' or 'gc'
	pid     INTEGER NOT NULL,
	pstart  INTEGER NOT NULL,
	boot    TEXT NOT NULL,
	started INTEGER NOT NULL -- Unix nanoseconds
);
`,
	// 3 → 4: chunk lists, listings and the reuse index move from WITHOUT
	// ROWID tables to rowid tables with a unique index on their key. A
	// WITHOUT ROWID b-tree holds whole rows, and SQLite compares a search
	// key with a row that spills onto overflow pages by reading all of it:
	// one 1 GiB file's 490 KB chunk list made every chunk-list lookup of a
	// store read 148 KB on average (5.7 GB for 38,543 lookups). The index
	// holds only keys, and a row's payload is read only when it is wanted.
	`
CREATE TABLE files_v4(
	id     INTEGER PRIMARY KEY,
	hash   BLOB NOT NULL UNIQUE,
	size   INTEGER NOT NULL,
	chunks BLOB NOT NULL
);
INSERT INTO files_v4(hash, size, chunks) SELECT hash, size, chunks FROM files ORDER BY hash;
DROP TABLE files;
ALTER TABLE files_v4 RENAME TO files;

CREATE TABLE dirs_v4(
	id   INTEGER PRIMARY KEY,
	hash BLOB NOT NULL UNIQUE,
	data BLOB NOT NULL
);
INSERT INTO dirs_v4(hash, data) SELECT hash, data FROM dirs ORDER BY hash;
DROP TABLE dirs;
ALTER TABLE dirs_v4 RENAME TO dirs;

CREATE TABLE ingest_index_v4(
	id   INTEGER PRIMARY KEY,
	name TEXT NOT NULL,
	gen  INTEGER NOT NULL,
	path BLOB NOT NULL,
	data BLOB NOT NULL,
	UNIQUE(name, gen, path)
);
INSERT INTO ingest_index_v4(name, gen, path, data) SELECT name, gen, path, data FROM ingest_index ORDER BY name, gen, path;
DROP TABLE ingest_index;
ALTER TABLE ingest_index_v4 RENAME TO ingest_index;
`,
	// 4 → 5: the delta triggers refuse with FAIL instead of ABORT, and
	// writes to chunks say OR FAIL. A statement that may ABORT after
	// writing more than one b-tree (a row and its trigger's update) makes
	// SQLite copy every page it touches into a statement journal, so that
	// the statement alone can be undone; with 64 KiB pages that journal
	// spills to a temporary file at the first page. gc on the gomod store
	// wrote 3.7 GB of statement journal for 290 MB of WAL. Every write
	// that fails rolls its whole transaction back, so no statement needs
	// undoing alone.
	`
DROP TRIGGER chunks_ref_check;
DROP TRIGGER chunks_ref_recheck;
DROP TRIGGER chunks_ref_add;
DROP TRIGGER chunks_ref_change;
DROP TRIGGER chunks_ref_drop;
DROP TRIGGER chunks_ref_keep;
CREATE TRIGGER chunks_ref_check BEFORE INSERT ON chunks WHEN NEW.ref IS NOT NULL BEGIN
	SELECT RAISE(FAIL, 'reference chunk missing or not shallower')
	WHERE NOT EXISTS (SELECT 1 FROM chunks WHERE hash = NEW.ref AND depth < NEW.depth);
END;
CREATE TRIGGER chunks_ref_recheck BEFORE UPDATE OF ref, depth ON chunks BEGIN
	SELECT RAISE(FAIL, 'reference chunk missing or not shallower')
	WHERE NEW.ref IS NOT NULL AND NOT EXISTS (SELECT 1 FROM chunks WHERE hash = NEW.ref AND depth < NEW.depth);
	SELECT RAISE(FAIL, 'a reference chunk cannot get deeper')
	WHERE NEW.depth > OLD.depth AND OLD.deps > 0;
END;
CREATE TRIGGER chunks_ref_add AFTER INSERT ON chunks WHEN NEW.ref IS NOT NULL BEGIN
	UPDATE OR FAIL chunks SET deps = deps + 1 WHERE hash = NEW.ref;
END;
CREATE TRIGGER chunks_ref_change AFTER UPDATE OF ref ON chunks WHEN OLD.ref IS NOT NEW.ref BEGIN
	UPDATE OR FAIL chunks SET deps = deps - 1 WHERE hash = OLD.ref;
	UPDATE OR FAIL chunks SET deps = deps + 1 WHERE hash = NEW.ref;
END;
CREATE TRIGGER chunks_ref_drop AFTER DELETE ON chunks WHEN OLD.ref IS NOT NULL BEGIN
	UPDATE OR FAIL chunks SET deps = deps - 1 WHERE hash = OLD.ref;
END;
CREATE TRIGGER chunks_ref_keep BEFORE DELETE ON chunks WHEN OLD.deps > 0 BEGIN
	SELECT RAISE(FAIL, 'chunk is the reference of other chunks');
END;
`,
}
