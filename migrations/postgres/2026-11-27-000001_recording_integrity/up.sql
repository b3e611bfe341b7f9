-- Recording integrity: the commit watermark and the recorder's lease.
-- (Keys come from an identity sequence, which never hands one out twice.)

-- Every row of every step <= committed_step is committed (NULL: no step yet).
ALTER TABLE simulations
    ADD COLUMN committed_step BIGINT,
    -- The recorder holding the run, and the sequence number of its last
    -- committed batch (to settle a COMMIT whose reply was lost).
    ADD COLUMN lease_token BIGINT,
    ADD COLUMN batch_seq BIGINT NOT NULL DEFAULT 0;

-- Runs recorded before the watermark existed count as committed up to the
-- last step they hold.
UPDATE simulations s SET committed_step = (
    SELECT MAX(step) FROM (
        SELECT MAX(step) AS step FROM agent_states WHERE sim_key = s.sim_key
        UNION ALL SELECT MAX(step) FROM simulation_steps WHERE sim_key = s.sim_key
        UNION ALL SELECT MAX(step) FROM step_metrics WHERE sim_key = s.sim_key
        UNION ALL SELECT MAX(step) FROM agent_metrics WHERE sim_key = s.sim_key
        UNION ALL SELECT MAX(step) FROM agent_memories WHERE sim_key = s.sim_key
    ) AS per_table
);
