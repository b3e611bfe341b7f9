-- A step's rollup across all agents names their kind when they all had
-- one: the per-kind row would repeat it (a run whose agents share a kind,
-- the common case, wrote two identical rows per step and field: a sixth
-- of the rows a batch of the engine bench wrote). Where `sole_kind` is
-- set, that kind has no row of its own at the step; where it is NULL,
-- every kind of the step has its row (as every row written before this
-- migration does).
ALTER TABLE simdb_step_rollups ADD COLUMN sole_kind TEXT;
