-- simdb_agent_metric_chunks becomes a rowid table, its primary key a
-- unique index beside it, as simdb_agent_state_chunks is.
--
-- WITHOUT ROWID kept the chunks in key order (metric, agent, chunk): each
-- batch put one new chunk into every series, so a batch of 300 series
-- split pages all over the table, and each commit wrote a page per series
-- (and its split sibling) to the WAL: ~1,500 pages of 4 KiB for 64 steps
-- of 150 agents and two metrics, growing with the run, where the chunks
-- themselves fill ~40; the split pages also stayed half empty on disk. A
-- rowid table appends the chunks; only the index's small entries land in
-- the middle.
--
-- The chunks are copied as they are. Fails if it ran already: a chunk
-- table that is a rowid table gets a row the CHECK on chunk refuses.
CREATE TABLE simdb_agent_metric_chunks_by_rowid (
    sim_key     INTEGER NOT NULL,
    metric_id   INTEGER NOT NULL,
    agent_index INTEGER NOT NULL,
    chunk       INTEGER NOT NULL CHECK (chunk >= 0),
    present     INTEGER NOT NULL CHECK (present <> 0),
    vals        BLOB NOT NULL,
    PRIMARY KEY (sim_key, metric_id, agent_index, chunk)
);
INSERT INTO simdb_agent_metric_chunks_by_rowid
    (sim_key, metric_id, agent_index, chunk, present, vals)
SELECT 0, 0, 0, -1, 1, x''
  FROM pragma_table_list
 WHERE name = 'simdb_agent_metric_chunks' AND wr = 0;
INSERT INTO simdb_agent_metric_chunks_by_rowid
    (sim_key, metric_id, agent_index, chunk, present, vals)
SELECT sim_key, metric_id, agent_index, chunk, present, vals
  FROM simdb_agent_metric_chunks
 ORDER BY sim_key, metric_id, agent_index, chunk;
DROP TABLE simdb_agent_metric_chunks;
ALTER TABLE simdb_agent_metric_chunks_by_rowid RENAME TO simdb_agent_metric_chunks;
