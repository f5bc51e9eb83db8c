-- Agent mailboxes: priority, FIFO within a priority, delivery status.
CREATE TABLE IF NOT EXISTS orchestrate_messages (
    id              BIGSERIAL PRIMARY KEY,
    recipient       TEXT    NOT NULL,
    sender          TEXT,
    thread          TEXT,
    priority        INTEGER NOT NULL,
    payload         JSONB   NOT NULL,
    status          TEXT    NOT NULL,
    deliveries      INTEGER NOT NULL DEFAULT 0,
    created_at_ms   BIGINT  NOT NULL,
    delivered_at_ms BIGINT
);
CREATE INDEX IF NOT EXISTS orchestrate_messages_by_recipient
    ON orchestrate_messages (recipient, status, priority DESC, id);
CREATE INDEX IF NOT EXISTS orchestrate_messages_by_thread
    ON orchestrate_messages (thread) WHERE thread IS NOT NULL;
