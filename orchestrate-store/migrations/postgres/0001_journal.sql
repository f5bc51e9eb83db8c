-- The journal: one row per event, append-only, checksummed. The primary key
-- is the optimistic-concurrency guard: two writers can never both store
-- sequence number N of one execution.
CREATE TABLE IF NOT EXISTS orchestrate_journal (
    execution_id   TEXT    NOT NULL,
    seq            BIGINT  NOT NULL,
    kind           TEXT    NOT NULL,
    step           TEXT,
    record         JSONB   NOT NULL,
    checksum       BIGINT  NOT NULL,
    record_version INTEGER NOT NULL,
    PRIMARY KEY (execution_id, seq)
);

-- Executions, projected from their journals in the same transaction.
CREATE TABLE IF NOT EXISTS orchestrate_executions (
    id              TEXT   PRIMARY KEY,
    workflow        TEXT   NOT NULL,
    status          TEXT   NOT NULL,
    idempotency_key TEXT,
    started_at_ms   BIGINT NOT NULL,
    events          BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS orchestrate_executions_by_status
    ON orchestrate_executions (status, started_at_ms DESC);
CREATE INDEX IF NOT EXISTS orchestrate_executions_by_workflow
    ON orchestrate_executions (workflow, started_at_ms DESC);
CREATE INDEX IF NOT EXISTS orchestrate_executions_by_key
    ON orchestrate_executions (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- The key-value area (cache, idempotency keys), with expiry.
CREATE TABLE IF NOT EXISTS orchestrate_kv (
    key           TEXT   PRIMARY KEY,
    value         JSONB  NOT NULL,
    expires_at_ms BIGINT
);
CREATE INDEX IF NOT EXISTS orchestrate_kv_by_expiry
    ON orchestrate_kv (expires_at_ms) WHERE expires_at_ms IS NOT NULL;
