-- Back to per-row foreign keys and by-step indexes. Rows whose agent is
-- not registered (impossible through simdb) would make this fail, not vanish.
ALTER TABLE agent_states ALTER COLUMN state TYPE jsonb USING state::jsonb;

ALTER TABLE agent_memories ADD FOREIGN KEY (sim_key, agent_index)
    REFERENCES agents (sim_key, agent_index) ON DELETE CASCADE;

ALTER TABLE agent_metrics DROP CONSTRAINT agent_metrics_pkey;
ALTER TABLE agent_metrics ADD PRIMARY KEY (sim_key, agent_index, metric_id, step);
CREATE INDEX agent_metrics_by_step ON agent_metrics (sim_key, metric_id, step);
ALTER TABLE agent_metrics ADD FOREIGN KEY (metric_id) REFERENCES metric_names (metric_id);
ALTER TABLE agent_metrics ADD FOREIGN KEY (sim_key, agent_index)
    REFERENCES agents (sim_key, agent_index) ON DELETE CASCADE;

CREATE INDEX agent_states_by_step ON agent_states (sim_key, step);
ALTER TABLE agent_states ADD FOREIGN KEY (sim_key, agent_index)
    REFERENCES agents (sim_key, agent_index) ON DELETE CASCADE;
