-- The audit trail: one row per write of a module's record, appended in the transaction of
-- the write (so a rolled-back write leaves no row). position is the order of recording
-- (the rowid: never reused while rows are only appended). No foreign key: ids of other
-- modules' records are plain text. Datetimes are ISO-8601 UTC text with microseconds.

CREATE TABLE audit_entries (
    position INTEGER NOT NULL PRIMARY KEY,
    entry_id TEXT NOT NULL CONSTRAINT uq_audit_entries_entry_id UNIQUE,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    module TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    action TEXT NOT NULL
        CHECK (action IN ('create', 'save', 'update', 'delete', 'claim', 'release', 'cancel')),
    run_id TEXT
);

CREATE INDEX ix_audit_entries_run ON audit_entries (run_id, position);

CREATE INDEX ix_audit_entries_entity ON audit_entries (entity_id, position);
