DROP INDEX ux_strategy_document_brief_version;
DROP TABLE strategy_document;
