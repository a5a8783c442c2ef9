UPDATE usage_events SET event_id = chr(1) || 'migrated-' || lpad(to_hex(id), 12, '0')
    WHERE event_id IS NULL;
ALTER TABLE usage_events ALTER COLUMN event_id SET NOT NULL;
ALTER TABLE usage_events DROP COLUMN id;
ALTER TABLE usage_events ADD PRIMARY KEY (org_id, event_id);
DROP TABLE usage_keys;
