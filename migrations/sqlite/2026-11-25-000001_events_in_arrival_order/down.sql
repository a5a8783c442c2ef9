CREATE INDEX usage_events_by_recorded ON usage_events (recorded_at);
