-- Each run's intake fingerprint (SHA-256 of the intake as canonical JSON), which its
-- idempotency key is checked against, and the artifact root it writes its package files
-- under (text: a folder today, an object-store URL later). Existing runs keep both NULL:
-- the code derives the fingerprint from the stored intake and the root from artifact_dirs.

SET LOCAL lock_timeout = '5s';

ALTER TABLE workflow_runs ADD COLUMN intake_fingerprint TEXT;

ALTER TABLE workflow_runs ADD COLUMN artifact_root TEXT;
