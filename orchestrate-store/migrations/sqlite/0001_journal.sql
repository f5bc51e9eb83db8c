-- The journal: one row per event, append-only, checksummed.
CREATE TABLE IF NOT EXISTS orchestrate_journal (
    execution_id   TEXT    NOT NULL,
    seq            INTEGER NOT NULL,
    kind           TEXT    NOT NULL,
    step           TEXT,
    record         BLOB    NOT NULL,
    checksum       INTEGER NOT NULL,
    record_version INTEGER NOT NULL,
    PRIMARY KEY (execution_id, seq)
) WITHOUT ROWID;

-- Executions, projected from their journals in the same transaction.
CREATE TABLE IF NOT EXISTS orchestrate_executions (
    id              TEXT    PRIMARY KEY,
    workflow        TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    idempotency_key TEXT,
    started_at_ms   INTEGER NOT NULL,
    events          INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS orchestrate_executions_by_status
    ON orchestrate_executions (status, started_at_ms);
CREATE INDEX IF NOT EXISTS orchestrate_executions_by_key
    ON orchestrate_executions (idempotency_key);

-- The key-value area (cache, idempotency keys), with expiry.
CREATE TABLE IF NOT EXISTS orchestrate_kv (
    key           TEXT    PRIMARY KEY,
    value         TEXT    NOT NULL,
    expires_at_ms INTEGER
);
