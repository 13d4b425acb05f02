-- 0009's rollback keeps its note of queued runs here until 0009 is applied again.
DROP TABLE IF EXISTS workflow_runs_queued;

DROP INDEX ix_workflow_runs_created;

DROP INDEX ix_workflow_runs_status;

DROP TABLE workflow_runs;
