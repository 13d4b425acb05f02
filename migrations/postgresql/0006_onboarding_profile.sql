-- Onboarding: the client's name and industry and the channels they want on the brief.
-- Existing briefs get empty values.

SET LOCAL lock_timeout = '5s';

ALTER TABLE onboarding_brief ADD COLUMN client_name TEXT NOT NULL DEFAULT '';

ALTER TABLE onboarding_brief ADD COLUMN industry TEXT NOT NULL DEFAULT '';

ALTER TABLE onboarding_brief ADD COLUMN channels TEXT NOT NULL DEFAULT '[]';
