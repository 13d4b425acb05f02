-- Onboarding: normalized briefs and one intake form per brief.
-- Keys and ordered text use COLLATE "C" (code-point order, whatever the server's locale).
-- JSON values are JSON text: jsonb would reorder keys and change some floats.

SET LOCAL lock_timeout = '5s';

CREATE TABLE onboarding_brief (
    brief_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    client_id TEXT COLLATE "C" NOT NULL,
    deliverables TEXT NOT NULL,
    exclusions TEXT NOT NULL,
    timeline_weeks BIGINT CHECK (timeline_weeks >= 0),
    objectives TEXT NOT NULL,
    target_audience TEXT NOT NULL,
    brand_guidelines TEXT NOT NULL,
    normalized_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX ix_onboarding_brief_client ON onboarding_brief (client_id, normalized_at, brief_id);

CREATE TABLE onboarding_intake (
    brief_id TEXT COLLATE "C" NOT NULL PRIMARY KEY
        REFERENCES onboarding_brief (brief_id) ON DELETE CASCADE,
    responses TEXT NOT NULL,
    submitted_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
