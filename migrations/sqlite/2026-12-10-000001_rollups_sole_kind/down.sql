-- Every step whose kind is named in its across-agents row gets that
-- kind's row back (the same sums), then the column goes.
INSERT INTO simdb_step_rollups (sim_key, field_id, kind, step, n, total, lo, hi, total_sq)
SELECT sim_key, field_id, sole_kind, step, n, total, lo, hi, total_sq
  FROM simdb_step_rollups
 WHERE kind = '' AND sole_kind IS NOT NULL;
ALTER TABLE simdb_step_rollups DROP COLUMN sole_kind;
