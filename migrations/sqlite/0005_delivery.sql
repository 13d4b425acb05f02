-- Delivery: packages and their artifacts, kept in the order given.
-- Datetimes are ISO-8601 UTC text with microseconds (fixed width: text order is time order).
-- Artifacts belong to their package: (package_id, position) is their key, and deleting a
-- package deletes its artifacts. Names are distinct within a package, checked by the DTO:
-- a unique index on them would refuse long names on PostgreSQL (btree rows hold ~2.7 kB).

CREATE TABLE delivery_packages (
    package_id TEXT NOT NULL PRIMARY KEY,
    draft_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX ix_delivery_packages_draft ON delivery_packages (draft_id, created_at, package_id);

CREATE TABLE delivery_artifacts (
    package_id TEXT NOT NULL
        REFERENCES delivery_packages (package_id) ON DELETE CASCADE,
    position INTEGER NOT NULL CHECK (position >= 0),
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    format TEXT NOT NULL,
    PRIMARY KEY (package_id, position)
);
