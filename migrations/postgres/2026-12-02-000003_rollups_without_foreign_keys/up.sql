-- The rollups lose their per-row foreign key to simdb_simulations, as the
-- hot tables did (2026-11-27-000002): every batch writes ~2 rollup rows per
-- step, and checking each against its simulation cost a quarter of a
-- recorder's time on PostgreSQL. Nothing else writes them: the writer's
-- batch proves (and locks) its simulation first, and delete_simulation
-- deletes them itself. Constraints are found by kind, whatever an earlier
-- release named them; finding none means this ran already, which fails.
DO $$
DECLARE r record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE contype = 'f'
                   AND conrelid = 'simdb_step_rollups'::regclass) THEN
        RAISE EXCEPTION 'simdb_step_rollups has no foreign key to drop';
    END IF;
    FOR r IN SELECT conname, conrelid::regclass AS tbl FROM pg_constraint
             WHERE contype = 'f'
               AND conrelid IN ('simdb_step_rollups'::regclass, 'simdb_agent_totals'::regclass)
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.tbl, r.conname);
    END LOOP;
END $$;
