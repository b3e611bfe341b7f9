ALTER TABLE simdb_step_rollups ADD CONSTRAINT step_rollups_sim_key_fkey
    FOREIGN KEY (sim_key) REFERENCES simdb_simulations (sim_key) ON DELETE CASCADE;
ALTER TABLE simdb_agent_totals ADD CONSTRAINT agent_totals_sim_key_fkey
    FOREIGN KEY (sim_key) REFERENCES simdb_simulations (sim_key) ON DELETE CASCADE;
