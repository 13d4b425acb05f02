DROP TABLE delivery_artifacts;
DROP INDEX ix_delivery_packages_draft;
DROP TABLE delivery_packages;
