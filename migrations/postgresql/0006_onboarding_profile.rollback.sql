ALTER TABLE onboarding_brief DROP COLUMN channels;

ALTER TABLE onboarding_brief DROP COLUMN industry;

ALTER TABLE onboarding_brief DROP COLUMN client_name;
