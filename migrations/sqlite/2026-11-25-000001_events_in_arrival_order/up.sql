-- Raw events are appended in arrival order (rowids only grow), so the audit window can be pruned by
-- rowid range (the first rowid past the window is found by binary search on recorded_at) and this
-- index, which the writer had to extend in every batch, is not needed.
DROP INDEX usage_events_by_recorded;
