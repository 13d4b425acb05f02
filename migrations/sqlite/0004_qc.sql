-- QC: one scored result per draft (the latest evaluation) and its issues, in order.
-- draft_id names a production draft: plain text, no foreign key across modules.
-- Datetimes are ISO-8601 UTC text with microseconds; booleans are 0/1.
-- Issues hang off the result's draft_id (unique): re-saving a draft's result under a new
-- result_id updates the result row in place (one upsert that locks it), then replaces
-- its issues; no key that issues point at ever changes.

CREATE TABLE qc_results (
    result_id TEXT NOT NULL PRIMARY KEY,
    draft_id TEXT NOT NULL CONSTRAINT uq_qc_results_draft_id UNIQUE,
    passed INTEGER NOT NULL CHECK (passed IN (0, 1)),
    score REAL NOT NULL CHECK (score >= 0 AND score <= 1),
    evaluated_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE qc_issues (
    draft_id TEXT NOT NULL
        REFERENCES qc_results (draft_id) ON DELETE CASCADE,
    position INTEGER NOT NULL CHECK (position >= 0),
    severity TEXT NOT NULL CHECK (severity IN ('critical', 'major', 'minor')),
    section TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (draft_id, position)
);
