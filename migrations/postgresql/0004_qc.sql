-- QC: one scored result per draft (the latest evaluation) and its issues, in order.
-- draft_id names a production draft: plain text, no foreign key across modules.
-- Keys use COLLATE "C" (code-point order, whatever the server's locale).
-- Issues hang off the result's draft_id (unique): re-saving a draft's result under a new
-- result_id updates the result row in place (one upsert that locks it, so concurrent
-- re-evaluations of one draft queue up and the last one wins), then replaces its issues;
-- no key that issues point at ever changes.

SET LOCAL lock_timeout = '5s';

CREATE TABLE qc_results (
    result_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    draft_id TEXT COLLATE "C" NOT NULL CONSTRAINT uq_qc_results_draft_id UNIQUE,
    passed BOOLEAN NOT NULL,
    score DOUBLE PRECISION NOT NULL CHECK (score >= 0 AND score <= 1),
    evaluated_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE qc_issues (
    draft_id TEXT COLLATE "C" NOT NULL
        REFERENCES qc_results (draft_id) ON DELETE CASCADE,
    -- 0011 makes it BIGINT.
    -- squawk-ignore prefer-bigint-over-int
    position INTEGER NOT NULL CHECK (position >= 0),
    severity TEXT NOT NULL CHECK (severity IN ('critical', 'major', 'minor')),
    section TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (draft_id, position)
);
