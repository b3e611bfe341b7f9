DROP TABLE simdb_agent_totals;
DROP TABLE simdb_step_rollups;
