DROP TABLE onboarding_intake;
DROP INDEX ix_onboarding_brief_client;
DROP TABLE onboarding_brief;
