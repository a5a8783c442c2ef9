ALTER TABLE orgs DROP COLUMN rules_version;
