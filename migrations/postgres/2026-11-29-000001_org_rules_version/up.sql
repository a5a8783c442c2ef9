-- Each server's usage writer keeps an org's rules (zone, limit, allowances, limit history, issued
-- statements) between batches while rules_version is unchanged; it reads the number under its
-- share lock on the org's row. Every change to those rules raises it, by these triggers, so that
-- no code path (a server, the CLI, an operator's SQL) can change a rule and leave it as it was.
ALTER TABLE orgs ADD COLUMN rules_version BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION creditmeter_org_rules_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE orgs SET rules_version = rules_version + 1 WHERE id = OLD.org_id;
    ELSE
        UPDATE orgs SET rules_version = rules_version + 1 WHERE id = NEW.org_id;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION creditmeter_org_row_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.rules_version := OLD.rules_version + 1;
    RETURN NEW;
END $$;

CREATE TRIGGER limit_changes_rules AFTER INSERT OR UPDATE OR DELETE ON limit_changes
    FOR EACH ROW EXECUTE FUNCTION creditmeter_org_rules_changed();
CREATE TRIGGER allowance_changes_rules AFTER INSERT OR UPDATE OR DELETE ON allowance_changes
    FOR EACH ROW EXECUTE FUNCTION creditmeter_org_rules_changed();
CREATE TRIGGER statements_rules AFTER INSERT OR UPDATE OR DELETE ON statements
    FOR EACH ROW EXECUTE FUNCTION creditmeter_org_rules_changed();
CREATE TRIGGER orgs_rules BEFORE UPDATE OF timezone, edition, licences, add_on_credits,
    additional_limit ON orgs
    FOR EACH ROW EXECUTE FUNCTION creditmeter_org_row_changed();
