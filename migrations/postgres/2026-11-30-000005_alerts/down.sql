DROP TRIGGER orgs_rules ON orgs;
CREATE TRIGGER orgs_rules BEFORE UPDATE OF timezone, edition, licences, add_on_credits,
    additional_limit ON orgs
    FOR EACH ROW EXECUTE FUNCTION creditmeter_org_row_changed();
DROP TABLE settings_changes;
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE alerts;
ALTER TABLE orgs DROP COLUMN webhook_secret;
ALTER TABLE orgs DROP COLUMN budget_stop;
ALTER TABLE orgs DROP COLUMN budget_minor;
ALTER TABLE orgs DROP COLUMN alert_thresholds;
