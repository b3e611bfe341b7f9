-- Every table of simdb's is named simdb_<name>, on both backends, so that
-- the same SQL runs on either and no name can meet a host's table (a
-- SQLite file has one namespace; here the schema already separates them).
-- Indexes, constraints and identity sequences keep their names: they live
-- in simdb's schema. A host's foreign keys follow the renamed tables.
ALTER TABLE experiments RENAME TO simdb_experiments;
ALTER TABLE simulations RENAME TO simdb_simulations;
ALTER TABLE simulation_tags RENAME TO simdb_simulation_tags;
ALTER TABLE agents RENAME TO simdb_agents;
ALTER TABLE agent_states RENAME TO simdb_agent_states;
ALTER TABLE simulation_steps RENAME TO simdb_simulation_steps;
ALTER TABLE metric_names RENAME TO simdb_metric_names;
ALTER TABLE step_metrics RENAME TO simdb_step_metrics;
ALTER TABLE agent_metrics RENAME TO simdb_agent_metrics;
ALTER TABLE agent_memories RENAME TO simdb_agent_memories;
ALTER TABLE events RENAME TO simdb_events;
ALTER TABLE step_rollups RENAME TO simdb_step_rollups;
ALTER TABLE agent_totals RENAME TO simdb_agent_totals;
