-- Agent metrics in chunks: one row per metric, agent and 64 aligned steps
-- (chunk c holds steps 64c .. 64c+63), keyed metric-first as the rows were.
--
-- * present: bit i set where step 64c+i was recorded.
-- * vals: the present steps' values (see src/chunk/values.rs): a codec
--   byte, then the f64s raw, or byte-shuffled and zstd-compressed where
--   that is smaller (STORAGE EXTERNAL: PostgreSQL does not try again).
--
-- The rows of simdb_agent_metrics are folded into chunks by simdb itself,
-- right after this migration and in the same transaction; that step then
-- drops the row table.
CREATE TABLE simdb_agent_metric_chunks (
    sim_key     INTEGER NOT NULL,
    metric_id   INTEGER NOT NULL,
    agent_index INTEGER NOT NULL,
    chunk       BIGINT NOT NULL CHECK (chunk >= 0),
    present     BIGINT NOT NULL CHECK (present <> 0),
    vals        BYTEA NOT NULL,
    PRIMARY KEY (sim_key, metric_id, agent_index, chunk)
);
ALTER TABLE simdb_agent_metric_chunks ALTER COLUMN vals SET STORAGE EXTERNAL;
