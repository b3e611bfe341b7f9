DROP TABLE agent_totals;
DROP TABLE step_rollups;
