-- Delivery versions (issue 17): delivering a package again keeps the earlier versions.
-- A package version is keyed by (package_id, version); its artifacts by (package_id,
-- version, position). workflow_run_id names the run that made the version (NULL: made
-- outside a run, or before 0016), so a compensation removes only its run's versions.
-- Every existing package becomes version 1, made by no recorded run.
-- SQLite changes a primary key only by rebuilding the tables: new ones are filled, the
-- old ones dropped, and the new ones renamed (SQLite >= 3.26 renames the artifacts'
-- foreign key with its parent).

-- The new columns come last, as PostgreSQL's ADD COLUMN puts them (export and copy
-- compare both dialects' columns in order).
CREATE TABLE delivery_packages_new (
    package_id TEXT NOT NULL,
    draft_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    workflow_run_id TEXT,
    PRIMARY KEY (package_id, version)
);

INSERT INTO delivery_packages_new (package_id, draft_id, created_at, updated_at, version, workflow_run_id)
SELECT package_id, draft_id, created_at, updated_at, 1, NULL FROM delivery_packages;

CREATE TABLE delivery_artifacts_new (
    package_id TEXT NOT NULL,
    position INTEGER NOT NULL CHECK (position >= 0),
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    format TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (package_id, version, position),
    FOREIGN KEY (package_id, version)
        REFERENCES delivery_packages_new (package_id, version) ON DELETE CASCADE
);

INSERT INTO delivery_artifacts_new (package_id, position, name, url, format, version)
SELECT package_id, position, name, url, format, 1 FROM delivery_artifacts;

DROP TABLE delivery_artifacts;
DROP TABLE delivery_packages;

ALTER TABLE delivery_packages_new RENAME TO delivery_packages;
ALTER TABLE delivery_artifacts_new RENAME TO delivery_artifacts;

CREATE INDEX ix_delivery_packages_draft ON delivery_packages (draft_id, created_at, package_id);
