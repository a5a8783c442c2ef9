DROP FUNCTION creditmeter_stale_batch();
ALTER TABLE usage_events ADD CONSTRAINT usage_events_org_id_fkey FOREIGN KEY (org_id) REFERENCES orgs(id);
