-- The journal keyed by one integer, (execution number << 32) | seq, in a
-- rowid table: an execution's events are consecutive keys, and a step's
-- append goes at the end of its run, where SQLite adds a leaf without
-- rebalancing its neighbours. Keyed by (execution_id TEXT, seq) WITHOUT
-- ROWID, every few appends split a leaf with a full rebalance: about three
-- WAL frames per step commit instead of one and a bit.
--
-- Execution numbers are handed out once per journal, in their own table;
-- 2^31 of them per database (the CHECK keeps a shifted key inside 63 bits).
CREATE TABLE orchestrate_journal_ids (
    n            INTEGER PRIMARY KEY,
    execution_id TEXT    NOT NULL UNIQUE,
    CHECK (n < 2147483648)
);

INSERT INTO orchestrate_journal_ids (execution_id)
    SELECT DISTINCT execution_id FROM orchestrate_journal ORDER BY execution_id;

CREATE TABLE orchestrate_journal_v4 (
    key            INTEGER PRIMARY KEY,
    kind           TEXT    NOT NULL,
    step           TEXT,
    record         BLOB    NOT NULL,
    checksum       INTEGER NOT NULL,
    record_version INTEGER NOT NULL
);

INSERT INTO orchestrate_journal_v4 (key, kind, step, record, checksum, record_version)
    SELECT (i.n << 32) | j.seq, j.kind, j.step, j.record, j.checksum, j.record_version
    FROM orchestrate_journal j
    JOIN orchestrate_journal_ids i ON i.execution_id = j.execution_id
    ORDER BY i.n, j.seq;

DROP TABLE orchestrate_journal;
ALTER TABLE orchestrate_journal_v4 RENAME TO orchestrate_journal;
