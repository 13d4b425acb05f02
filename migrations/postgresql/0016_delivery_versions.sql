-- Delivery versions (issue 17): delivering a package again keeps the earlier versions.
-- A package version is keyed by (package_id, version); its artifacts by (package_id,
-- version, position). workflow_run_id names the run that made the version (NULL: made
-- outside a run, or before 0016), so a compensation removes only its run's versions.
-- Every existing package becomes version 1, made by no recorded run.
--
-- The keys change in place: the new columns have a constant default (no table rewrite on
-- PostgreSQL >= 11), then the primary keys are rebuilt on the new columns. Building a
-- primary key's index holds the table's ACCESS EXCLUSIVE lock for as long as the index
-- build takes (a migration runs in one transaction, where CONCURRENTLY is not allowed):
-- packages are a few rows per run, and lock_timeout bounds the wait for the lock.
-- squawk-ignore-file ban-drop-constraint
-- (the old keys are replaced by the new ones in this same transaction.)
SET LOCAL lock_timeout = '5s';

ALTER TABLE delivery_packages ADD COLUMN version BIGINT NOT NULL DEFAULT 1;

ALTER TABLE delivery_packages ADD COLUMN workflow_run_id TEXT COLLATE "C";

ALTER TABLE delivery_packages ADD CONSTRAINT ck_delivery_packages_version CHECK (version >= 1) NOT VALID;

-- Every row has version 1 (the default just added): validated under the lock held anyway.
-- squawk-ignore constraint-missing-not-valid
ALTER TABLE delivery_packages VALIDATE CONSTRAINT ck_delivery_packages_version;

ALTER TABLE delivery_artifacts ADD COLUMN version BIGINT NOT NULL DEFAULT 1;

ALTER TABLE delivery_artifacts DROP CONSTRAINT delivery_artifacts_package_id_fkey;

ALTER TABLE delivery_artifacts DROP CONSTRAINT delivery_artifacts_pkey;

ALTER TABLE delivery_packages DROP CONSTRAINT delivery_packages_pkey;

-- A primary key cannot be NOT VALID; its index is built under the lock held already.
-- squawk-ignore constraint-missing-not-valid, adding-serial-primary-key-field
ALTER TABLE delivery_packages ADD CONSTRAINT delivery_packages_pkey PRIMARY KEY (package_id, version);

-- A primary key cannot be NOT VALID; its index is built under the lock held already.
-- squawk-ignore constraint-missing-not-valid, adding-serial-primary-key-field
ALTER TABLE delivery_artifacts ADD CONSTRAINT delivery_artifacts_pkey
    PRIMARY KEY (package_id, version, position);

ALTER TABLE delivery_artifacts ADD CONSTRAINT delivery_artifacts_version_fkey
    FOREIGN KEY (package_id, version) REFERENCES delivery_packages (package_id, version)
    ON DELETE CASCADE NOT VALID;

-- squawk-ignore constraint-missing-not-valid
ALTER TABLE delivery_artifacts VALIDATE CONSTRAINT delivery_artifacts_version_fkey;
