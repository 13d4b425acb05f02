-- squawk-ignore-file ban-drop-table, require-concurrent-index-deletion
-- (a rollback drops what its migration made: its tables and their indexes, in one
-- transaction, so CONCURRENTLY cannot apply; `aicmo db downgrade` asks first.)

SET LOCAL lock_timeout = '5s';

DROP INDEX ix_webhooks_notifications_subscription;
DROP INDEX ix_webhooks_notifications_occurred;
DROP INDEX ix_webhooks_notifications_due;
DROP TABLE webhooks_notifications;
DROP INDEX ix_webhooks_subscriptions_created;
DROP TABLE webhooks_subscriptions;
