-- Webhooks (issue 17): subscriptions, and the outbox of notifications written in the same
-- transaction as the delivery or run end they announce, with their delivery state.
-- Keys and ordered text use COLLATE "C" (code-point order, whatever the server's locale).
-- JSON values (events, payload) are JSON text. No foreign key ties a notification to its
-- subscription: removing a subscription while a delivery commits must never fail that
-- delivery's transaction (the repository removes a subscription's notifications itself).

SET LOCAL lock_timeout = '5s';

CREATE TABLE webhooks_subscriptions (
    subscription_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX ix_webhooks_subscriptions_created
    ON webhooks_subscriptions (created_at, subscription_id);

CREATE TABLE webhooks_notifications (
    notification_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    subscription_id TEXT COLLATE "C" NOT NULL,
    event TEXT COLLATE "C" NOT NULL,
    payload TEXT NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    status TEXT COLLATE "C" NOT NULL CHECK (status IN ('PENDING', 'SENT', 'DEAD')),
    attempts BIGINT NOT NULL CHECK (attempts >= 0),
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error TEXT,
    sent_at TIMESTAMPTZ,
    claimed_by TEXT,
    lease_expires_at TIMESTAMPTZ,
    lease_token BIGINT NOT NULL CHECK (lease_token >= 0),
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- What a claim reads: the due PENDING rows, earliest first.
CREATE INDEX ix_webhooks_notifications_due
    ON webhooks_notifications (status, next_attempt_at, notification_id);

CREATE INDEX ix_webhooks_notifications_occurred
    ON webhooks_notifications (occurred_at, notification_id);

CREATE INDEX ix_webhooks_notifications_subscription
    ON webhooks_notifications (subscription_id);
