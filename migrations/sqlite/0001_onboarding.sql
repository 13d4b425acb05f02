-- Onboarding: normalized briefs and one intake form per brief.
-- Datetimes are ISO-8601 UTC text with microseconds (fixed width: text order is time order).
-- JSON values are JSON text.

CREATE TABLE onboarding_brief (
    brief_id TEXT NOT NULL PRIMARY KEY,
    client_id TEXT NOT NULL,
    deliverables TEXT NOT NULL,
    exclusions TEXT NOT NULL,
    timeline_weeks INTEGER CHECK (timeline_weeks >= 0),
    objectives TEXT NOT NULL,
    target_audience TEXT NOT NULL,
    brand_guidelines TEXT NOT NULL,
    normalized_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX ix_onboarding_brief_client ON onboarding_brief (client_id, normalized_at, brief_id);

CREATE TABLE onboarding_intake (
    brief_id TEXT NOT NULL PRIMARY KEY
        REFERENCES onboarding_brief (brief_id) ON DELETE CASCADE,
    responses TEXT NOT NULL,
    submitted_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
