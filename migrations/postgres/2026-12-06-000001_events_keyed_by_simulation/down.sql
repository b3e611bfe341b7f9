ALTER TABLE simdb_events DROP CONSTRAINT events_pkey;
ALTER TABLE simdb_events ADD CONSTRAINT events_pkey PRIMARY KEY (event_id);
CREATE INDEX events_by_simulation ON simdb_events (sim_key, event_id);
