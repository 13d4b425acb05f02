DROP INDEX ix_audit_entries_entity;

DROP INDEX ix_audit_entries_run;

DROP TABLE audit_entries;
