-- Code before 0010 neither checks fingerprints nor records roots; both can be derived again
-- after an upgrade (from intake and artifact_dirs), so nothing is lost.

ALTER TABLE workflow_runs DROP COLUMN artifact_root;

ALTER TABLE workflow_runs DROP COLUMN intake_fingerprint;
