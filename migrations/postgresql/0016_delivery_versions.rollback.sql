-- Undoing 0016 keeps the latest version of each package (the one every read returned)
-- and its artifacts; the earlier versions (their artifacts go with them: ON DELETE
-- CASCADE) and the runs that made them are dropped. The keys go back to 0005's.
-- squawk-ignore-file ban-drop-constraint, ban-drop-column
-- (a rollback drops the columns and constraints its migration added.)
-- aicmo-losses delivery_packages: SELECT COUNT(*) FROM delivery_packages p WHERE p.version < (SELECT MAX(m.version) FROM delivery_packages m WHERE m.package_id = p.package_id)
SET LOCAL lock_timeout = '5s';

DELETE FROM delivery_packages p
WHERE p.version < (SELECT MAX(m.version) FROM delivery_packages m WHERE m.package_id = p.package_id);

ALTER TABLE delivery_artifacts DROP CONSTRAINT delivery_artifacts_version_fkey;

ALTER TABLE delivery_artifacts DROP CONSTRAINT delivery_artifacts_pkey;

ALTER TABLE delivery_packages DROP CONSTRAINT delivery_packages_pkey;

-- The latest versions keep their artifacts: each artifact row takes its package's one
-- remaining version away with the column.
ALTER TABLE delivery_artifacts DROP COLUMN version;

ALTER TABLE delivery_packages DROP COLUMN version;

ALTER TABLE delivery_packages DROP COLUMN workflow_run_id;

-- A primary key cannot be NOT VALID; its index is built under the lock held already.
-- squawk-ignore constraint-missing-not-valid, adding-serial-primary-key-field
ALTER TABLE delivery_packages ADD CONSTRAINT delivery_packages_pkey PRIMARY KEY (package_id);

-- A primary key cannot be NOT VALID; its index is built under the lock held already.
-- squawk-ignore constraint-missing-not-valid, adding-serial-primary-key-field
ALTER TABLE delivery_artifacts ADD CONSTRAINT delivery_artifacts_pkey PRIMARY KEY (package_id, position);

ALTER TABLE delivery_artifacts ADD CONSTRAINT delivery_artifacts_package_id_fkey
    FOREIGN KEY (package_id) REFERENCES delivery_packages (package_id)
    ON DELETE CASCADE NOT VALID;

-- squawk-ignore constraint-missing-not-valid
ALTER TABLE delivery_artifacts VALIDATE CONSTRAINT delivery_artifacts_package_id_fkey;
