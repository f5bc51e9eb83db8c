-- An execution's event count is read from its journal (the primary key gives
-- MAX(seq) in one index probe) instead of being rewritten by every append:
-- one statement less per checkpoint.
ALTER TABLE orchestrate_executions DROP COLUMN IF EXISTS events;
