-- Strategy: who approved a document (NULL until approved, and for earlier approvals).

SET LOCAL lock_timeout = '5s';

ALTER TABLE strategy_document ADD COLUMN approved_by TEXT;
