-- Agent metric chunks with their 8-byte columns first. PostgreSQL aligns
-- a BIGINT to 8 bytes: after three INTEGERs it padded 4 bytes in every row
-- (a 64-step chunk of a random walk is ~500 bytes, so 16 rows fill a page
-- and 4 bytes decide whether the 16th fits). Columns are never moved in
-- place: the table is rebuilt in key order, then swapped in, with its
-- checks, storage, TOAST target, key and grants. Every statement of simdb
-- names its columns, so nothing else changes; on SQLite (no padding) the
-- table stays as it is.

-- Refused over a table already rebuilt, as every migration refuses the
-- objects it would create.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
               WHERE attrelid = 'simdb_agent_metric_chunks'::regclass
                 AND attname = 'chunk' AND attnum = 1) THEN
        RAISE EXCEPTION 'simdb_agent_metric_chunks already has its int8 columns first';
    END IF;
END
$$;

-- No writer adds to the old table between the copy and the swap (a
-- recorder of the previous release may be running): it waits, and then
-- finds the new table under the same name; every statement names its
-- columns.
LOCK TABLE simdb_agent_metric_chunks IN ACCESS EXCLUSIVE MODE;

CREATE TABLE simdb_agent_metric_chunks_next (
    chunk       BIGINT NOT NULL CHECK (chunk >= 0),
    present     BIGINT NOT NULL CHECK (present <> 0),
    sim_key     INTEGER NOT NULL,
    metric_id   INTEGER NOT NULL,
    agent_index INTEGER NOT NULL,
    vals        BYTEA NOT NULL
);
ALTER TABLE simdb_agent_metric_chunks_next ALTER COLUMN vals SET STORAGE EXTERNAL;
ALTER TABLE simdb_agent_metric_chunks_next SET (toast_tuple_target = 8160);

INSERT INTO simdb_agent_metric_chunks_next (chunk, present, sim_key, metric_id, agent_index, vals)
SELECT chunk, present, sim_key, metric_id, agent_index, vals
FROM simdb_agent_metric_chunks
ORDER BY sim_key, metric_id, agent_index, chunk;

-- The grants made on the old table, to the same roles.
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN
        SELECT a.privilege_type, a.is_grantable,
               CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS grantee
        FROM pg_catalog.pg_class c
        CROSS JOIN LATERAL aclexplode(c.relacl) a
        LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
        WHERE c.oid = 'simdb_agent_metric_chunks'::regclass
          AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('GRANT %s ON simdb_agent_metric_chunks_next TO %s%s',
                       g.privilege_type, g.grantee,
                       CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
END
$$;

DROP TABLE simdb_agent_metric_chunks;
ALTER TABLE simdb_agent_metric_chunks_next RENAME TO simdb_agent_metric_chunks;
-- The key is built once, from sorted rows: its pages come out full.
ALTER TABLE simdb_agent_metric_chunks
    ADD CONSTRAINT simdb_agent_metric_chunks_pkey
    PRIMARY KEY (sim_key, metric_id, agent_index, chunk);
