ALTER TABLE simdb_simulation_steps ADD CONSTRAINT simulation_steps_sim_key_fkey
    FOREIGN KEY (sim_key) REFERENCES simdb_simulations (sim_key) ON DELETE CASCADE;
ALTER TABLE simdb_step_metrics ADD CONSTRAINT step_metrics_sim_key_fkey
    FOREIGN KEY (sim_key) REFERENCES simdb_simulations (sim_key) ON DELETE CASCADE;
ALTER TABLE simdb_step_metrics ADD CONSTRAINT step_metrics_metric_id_fkey
    FOREIGN KEY (metric_id) REFERENCES simdb_metric_names (metric_id);
