-- Simulation metrics and step rows lose their per-row foreign keys, as the
-- hot tables (2026-11-27-000002) and the rollups (2026-12-02-000003) did:
-- a recorder's batch writes a simulation metric per step, and PostgreSQL
-- checked each row against simdb_simulations and simdb_metric_names by a
-- query of its own (a fifth of the server's time recording the engine
-- bench). What the keys promised still holds:
--
-- * every writer of these rows proves its run first and holds it: a
--   recorder's batch by its lease on the run's row (which the batch updates),
--   a one-row write and an import under the run's row lock;
-- * delete_simulation removes these rows itself, a bounded transaction at a
--   time (src/store/deletion.rs), instead of by cascade;
-- * metric names are never deleted, and the writer interns every name it
--   uses before the batch that uses it.
--
-- Constraints are found by kind, whatever an earlier release named them;
-- finding none means this ran already, which fails.
DO $$
DECLARE r record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE contype = 'f'
                   AND conrelid = 'simdb_step_metrics'::regclass) THEN
        RAISE EXCEPTION 'simdb_step_metrics has no foreign key to drop';
    END IF;
    FOR r IN SELECT conname, conrelid::regclass AS tbl FROM pg_constraint
             WHERE contype = 'f'
               AND conrelid IN ('simdb_step_metrics'::regclass, 'simdb_simulation_steps'::regclass)
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.tbl, r.conname);
    END LOOP;
END $$;
