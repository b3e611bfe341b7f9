-- Chunks stay in their table's own pages up to a whole page (8160 bytes)
-- instead of moving to TOAST past ~2 KB.
--
-- A 64-step state chunk of states that are ~40 bytes compressed is ~3 KB
-- with its rewards: PostgreSQL moved it out of line, into TOAST pieces
-- with an index of their own, on every insert (toast_save_datum led the
-- server's profile recording the engine bench) and read it back through
-- that index on every read. Kept in line, a chunk is one heap tuple and
-- one index entry.
-- Larger chunks still go to TOAST (their columns are STORAGE EXTERNAL:
-- never compressed again). Rows already stored stay where they are.
ALTER TABLE simdb_agent_state_chunks SET (toast_tuple_target = 8160);
ALTER TABLE simdb_agent_metric_chunks SET (toast_tuple_target = 8160);
