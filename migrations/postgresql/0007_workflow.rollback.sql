DROP INDEX ix_workflow_runs_created;

DROP INDEX ix_workflow_runs_status;

DROP TABLE workflow_runs;
