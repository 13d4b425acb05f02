-- Strategy: who approved a document (NULL until approved, and for earlier approvals).

ALTER TABLE strategy_document ADD COLUMN approved_by TEXT;
