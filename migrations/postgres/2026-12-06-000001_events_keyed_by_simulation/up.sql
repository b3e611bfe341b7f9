-- simdb_events is keyed by (sim_key, event_id), as every other table of
-- one simulation's rows is keyed by sim_key first: a distributed
-- PostgreSQL (Citus) can then shard it by sim_key, and a run's events are
-- read in key order. event_id stays an identity column, unique by its
-- sequence; the index events_by_simulation (sim_key, event_id) becomes
-- the primary key's. Keys are found by their columns, whatever an earlier
-- release named them; an event_id-only key missing means this ran
-- already, which fails.
DO $$
DECLARE
    r record;
    pk name;
BEGIN
    SELECT c.conname INTO pk
      FROM pg_constraint c
     WHERE c.contype = 'p'
       AND c.conrelid = 'simdb_events'::regclass
       AND c.conkey = ARRAY[(SELECT attnum FROM pg_attribute
                              WHERE attrelid = 'simdb_events'::regclass
                                AND attname = 'event_id')]::int2[];
    IF pk IS NULL THEN
        RAISE EXCEPTION 'simdb_events has no primary key on event_id alone to replace';
    END IF;
    EXECUTE format('ALTER TABLE simdb_events DROP CONSTRAINT %I', pk);
    FOR r IN SELECT i.indexrelid::regclass AS idx
               FROM pg_index i
              WHERE i.indrelid = 'simdb_events'::regclass
                AND NOT i.indisunique
                AND i.indnatts = 2
                AND i.indkey[0] = (SELECT attnum FROM pg_attribute
                                    WHERE attrelid = 'simdb_events'::regclass AND attname = 'sim_key')
                AND i.indkey[1] = (SELECT attnum FROM pg_attribute
                                    WHERE attrelid = 'simdb_events'::regclass AND attname = 'event_id')
    LOOP
        EXECUTE format('DROP INDEX %s', r.idx);
    END LOOP;
END $$;
ALTER TABLE simdb_events ADD CONSTRAINT events_pkey PRIMARY KEY (sim_key, event_id);
