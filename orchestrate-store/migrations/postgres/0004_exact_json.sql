-- Values are kept exactly as written. JSONB normalises what it stores: a
-- float such as 1e15 came back as the integer 1000000000000000, -0.0 as
-- 0.0, and a string holding U+0000 was refused outright, so an accepted
-- value could come back different or not be stored at all. JSON keeps the
-- text verbatim. Records written before keep record_version 1 (their
-- checksum covers a canonical form of the JSONB text); later ones are
-- version 2, whose checksum covers the exact text.
ALTER TABLE orchestrate_journal ALTER COLUMN record TYPE JSON USING record::json;
ALTER TABLE orchestrate_kv ALTER COLUMN value TYPE JSON USING value::json;
ALTER TABLE orchestrate_messages ALTER COLUMN payload TYPE JSON USING payload::json;

-- Every execution that has a journal, for listings that find the executions
-- whose projection row is missing or damaged without scanning every record.
CREATE INDEX IF NOT EXISTS orchestrate_journal_starts
    ON orchestrate_journal (execution_id) WHERE seq = 0;
