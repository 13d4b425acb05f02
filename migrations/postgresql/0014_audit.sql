-- The audit trail: one row per write of a module's record, appended in the transaction of
-- the write (so a rolled-back write leaves no row). position is the order of recording
-- (an identity; a rolled-back transaction leaves a gap). No foreign key: ids of other
-- modules' records are plain text. Keys use COLLATE "C" (code-point order).

SET LOCAL lock_timeout = '5s';

CREATE TABLE audit_entries (
    position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry_id TEXT COLLATE "C" NOT NULL CONSTRAINT uq_audit_entries_entry_id UNIQUE,
    at TIMESTAMPTZ NOT NULL,
    actor TEXT NOT NULL,
    module TEXT COLLATE "C" NOT NULL,
    entity TEXT COLLATE "C" NOT NULL,
    entity_id TEXT COLLATE "C" NOT NULL,
    action TEXT COLLATE "C" NOT NULL
        CHECK (action IN ('create', 'save', 'update', 'delete', 'claim', 'release', 'cancel')),
    run_id TEXT COLLATE "C"
);

CREATE INDEX ix_audit_entries_run ON audit_entries (run_id, position);

CREATE INDEX ix_audit_entries_entity ON audit_entries (entity_id, position);
