-- Delivery: packages and their artifacts, kept in the order given.
-- Keys and ordered text use COLLATE "C" (code-point order, whatever the server's locale).
-- Times are timestamptz (the original stored naive times here and shifted aware input).
-- Artifacts belong to their package: (package_id, position) is their key, and deleting a
-- package deletes its artifacts. Names are distinct within a package, checked by the DTO:
-- a unique index on them would refuse long names on PostgreSQL (btree rows hold ~2.7 kB).

SET LOCAL lock_timeout = '5s';

CREATE TABLE delivery_packages (
    package_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    draft_id TEXT COLLATE "C" NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX ix_delivery_packages_draft ON delivery_packages (draft_id, created_at, package_id);

CREATE TABLE delivery_artifacts (
    package_id TEXT COLLATE "C" NOT NULL
        REFERENCES delivery_packages (package_id) ON DELETE CASCADE,
    position BIGINT NOT NULL CHECK (position >= 0),
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    format TEXT NOT NULL,
    PRIMARY KEY (package_id, position)
);
