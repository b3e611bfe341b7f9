-- Rollups per 64-step block (the agent-state chunk's span), across every
-- agent: a chart over many runs or many steps reads one row per block
-- instead of one per step. Written with the step rollups, in the batch's
-- transaction; cut with them on resume; deleted with the run. No foreign
-- key (as the step rollups, migration 2026-12-02-000003). Filled here from
-- the step rollups earlier releases wrote.
CREATE TABLE simdb_block_rollups (
    sim_key    INTEGER NOT NULL,
    field_id   INTEGER NOT NULL,
    block      INTEGER NOT NULL CHECK (block >= 0),
    first_step INTEGER NOT NULL,
    last_step  INTEGER NOT NULL,
    n          INTEGER NOT NULL,
    total      REAL NOT NULL,
    lo         REAL NOT NULL,
    hi         REAL NOT NULL,
    total_sq   REAL NOT NULL,
    PRIMARY KEY (sim_key, field_id, block)
) WITHOUT ROWID;

INSERT INTO simdb_block_rollups
    (sim_key, field_id, block, first_step, last_step, n, total, lo, hi, total_sq)
SELECT sim_key, field_id, step / 64, MIN(step), MAX(step), SUM(n), SUM(total),
       MIN(lo), MAX(hi), SUM(total_sq)
  FROM simdb_step_rollups
 WHERE kind = ''
 GROUP BY sim_key, field_id, step / 64;
