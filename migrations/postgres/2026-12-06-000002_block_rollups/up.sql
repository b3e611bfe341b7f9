-- Rollups per 64-step block (the agent-state chunk's span), across every
-- agent: a chart over many runs or many steps reads one row per block
-- instead of one per step. Written with the step rollups, in the batch's
-- transaction; cut with them on resume; deleted with the run. No foreign
-- key (as the step rollups, migration 2026-12-02-000003). Filled here from
-- the step rollups earlier releases wrote.
CREATE TABLE simdb_block_rollups (
    sim_key    INTEGER NOT NULL,
    field_id   INTEGER NOT NULL,
    block      BIGINT NOT NULL CHECK (block >= 0),
    first_step BIGINT NOT NULL,
    last_step  BIGINT NOT NULL,
    n          BIGINT NOT NULL,
    total      DOUBLE PRECISION NOT NULL,
    lo         DOUBLE PRECISION NOT NULL,
    hi         DOUBLE PRECISION NOT NULL,
    total_sq   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (sim_key, field_id, block)
);

INSERT INTO simdb_block_rollups
    (sim_key, field_id, block, first_step, last_step, n, total, lo, hi, total_sq)
SELECT sim_key, field_id, step / 64, MIN(step), MAX(step), CAST(SUM(n) AS BIGINT), SUM(total),
       MIN(lo), MAX(hi), SUM(total_sq)
  FROM simdb_step_rollups
 WHERE kind = ''
 GROUP BY sim_key, field_id, step / 64;
