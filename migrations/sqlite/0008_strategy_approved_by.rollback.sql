ALTER TABLE strategy_document DROP COLUMN approved_by;
