-- Back to the WITHOUT ROWID table, every chunk copied.
CREATE TABLE simdb_agent_metric_chunks_in_key_order (
    sim_key     INTEGER NOT NULL,
    metric_id   INTEGER NOT NULL,
    agent_index INTEGER NOT NULL,
    chunk       INTEGER NOT NULL CHECK (chunk >= 0),
    present     INTEGER NOT NULL CHECK (present <> 0),
    vals        BLOB NOT NULL,
    PRIMARY KEY (sim_key, metric_id, agent_index, chunk)
) WITHOUT ROWID;
INSERT INTO simdb_agent_metric_chunks_in_key_order
    (sim_key, metric_id, agent_index, chunk, present, vals)
SELECT sim_key, metric_id, agent_index, chunk, present, vals
  FROM simdb_agent_metric_chunks;
DROP TABLE simdb_agent_metric_chunks;
ALTER TABLE simdb_agent_metric_chunks_in_key_order RENAME TO simdb_agent_metric_chunks;
