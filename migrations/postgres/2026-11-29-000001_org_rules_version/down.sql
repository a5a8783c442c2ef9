DROP TRIGGER orgs_rules ON orgs;
DROP TRIGGER statements_rules ON statements;
DROP TRIGGER allowance_changes_rules ON allowance_changes;
DROP TRIGGER limit_changes_rules ON limit_changes;
DROP FUNCTION creditmeter_org_row_changed();
DROP FUNCTION creditmeter_org_rules_changed();
ALTER TABLE orgs DROP COLUMN rules_version;
