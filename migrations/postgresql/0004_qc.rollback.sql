DROP TABLE qc_issues;
DROP TABLE qc_results;
