-- Recording integrity: keys that are never reused, the commit watermark and
-- the recorder's lease.
--
-- `sim_key INTEGER PRIMARY KEY` hands out max(sim_key) + 1, so deleting the
-- newest simulation would give its key to the next one. Keys now come from
-- `key_sequences`, which only ever counts up.
CREATE TABLE simdb_key_sequences (
    name       TEXT PRIMARY KEY NOT NULL,
    last_value INTEGER NOT NULL
);
INSERT INTO simdb_key_sequences (name, last_value)
    SELECT 'simulations', COALESCE(MAX(sim_key), 0) FROM simdb_simulations;

-- Every row of every step <= committed_step is committed (NULL: no step yet).
ALTER TABLE simdb_simulations ADD COLUMN committed_step INTEGER;
-- The recorder holding the run, and the sequence number of its last
-- committed batch (to settle a COMMIT whose reply was lost).
ALTER TABLE simdb_simulations ADD COLUMN lease_token INTEGER;
ALTER TABLE simdb_simulations ADD COLUMN batch_seq INTEGER NOT NULL DEFAULT 0;

-- Runs recorded before the watermark existed count as committed up to the
-- last step they hold.
UPDATE simdb_simulations SET committed_step = (
    SELECT MAX(step) FROM (
        SELECT MAX(step) AS step FROM simdb_agent_states WHERE sim_key = simdb_simulations.sim_key
        UNION ALL SELECT MAX(step) FROM simdb_simulation_steps WHERE sim_key = simdb_simulations.sim_key
        UNION ALL SELECT MAX(step) FROM simdb_step_metrics WHERE sim_key = simdb_simulations.sim_key
        UNION ALL SELECT MAX(step) FROM simdb_agent_metrics WHERE sim_key = simdb_simulations.sim_key
        UNION ALL SELECT MAX(step) FROM simdb_agent_memories WHERE sim_key = simdb_simulations.sim_key
    )
);
