-- Undoing 0016 keeps the latest version of each package (the one every read returned)
-- and its artifacts; the earlier versions and the runs that made them are dropped.
-- aicmo-losses delivery_packages: SELECT COUNT(*) FROM delivery_packages p WHERE p.version < (SELECT MAX(m.version) FROM delivery_packages m WHERE m.package_id = p.package_id)

CREATE TABLE delivery_packages_old (
    package_id TEXT NOT NULL PRIMARY KEY,
    draft_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

INSERT INTO delivery_packages_old (package_id, draft_id, created_at, updated_at)
SELECT p.package_id, p.draft_id, p.created_at, p.updated_at FROM delivery_packages p
WHERE p.version = (SELECT MAX(m.version) FROM delivery_packages m WHERE m.package_id = p.package_id);

CREATE TABLE delivery_artifacts_old (
    package_id TEXT NOT NULL
        REFERENCES delivery_packages_old (package_id) ON DELETE CASCADE,
    position INTEGER NOT NULL CHECK (position >= 0),
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    format TEXT NOT NULL,
    PRIMARY KEY (package_id, position)
);

INSERT INTO delivery_artifacts_old (package_id, position, name, url, format)
SELECT a.package_id, a.position, a.name, a.url, a.format FROM delivery_artifacts a
WHERE a.version = (SELECT MAX(m.version) FROM delivery_packages m WHERE m.package_id = a.package_id);

DROP TABLE delivery_artifacts;
DROP TABLE delivery_packages;

ALTER TABLE delivery_packages_old RENAME TO delivery_packages;
ALTER TABLE delivery_artifacts_old RENAME TO delivery_artifacts;

CREATE INDEX ix_delivery_packages_draft ON delivery_packages (draft_id, created_at, package_id);
