-- Strategy: versioned strategy documents; (brief_id, version) names at most one document.
-- Keys use COLLATE "C" (code-point order, whatever the server's locale). KPIs, channels
-- and milestones are JSON text: jsonb would reorder keys and change some floats.
-- brief_id is a plain id: no foreign key crosses modules.

SET LOCAL lock_timeout = '5s';

CREATE TABLE strategy_document (
    strategy_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    brief_id TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL CHECK (version >= 1),
    kpis TEXT NOT NULL,
    channels TEXT NOT NULL,
    milestones TEXT NOT NULL,
    duration_weeks BIGINT NOT NULL CHECK (duration_weeks >= 0),
    executive_summary TEXT NOT NULL,
    is_approved BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    approved_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE UNIQUE INDEX ux_strategy_document_brief_version ON strategy_document (brief_id, version);
