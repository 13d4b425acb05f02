-- Strategy: versioned strategy documents; (brief_id, version) names at most one document.
-- Datetimes are ISO-8601 UTC text with microseconds. KPIs, channels and milestones are
-- JSON text (order and floats round-trip exactly). brief_id is a plain id: no foreign key
-- crosses modules.

CREATE TABLE strategy_document (
    strategy_id TEXT NOT NULL PRIMARY KEY,
    brief_id TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    kpis TEXT NOT NULL,
    channels TEXT NOT NULL,
    milestones TEXT NOT NULL,
    duration_weeks INTEGER NOT NULL CHECK (duration_weeks >= 0),
    executive_summary TEXT NOT NULL,
    is_approved INTEGER NOT NULL CHECK (is_approved IN (0, 1)),
    created_at TEXT NOT NULL,
    approved_at TEXT,
    updated_at TEXT NOT NULL
);

CREATE UNIQUE INDEX ux_strategy_document_brief_version ON strategy_document (brief_id, version);
