-- Back to the row layout, empty: chunks cannot be unfolded in SQL.
DROP TABLE simdb_agent_metric_chunks;
CREATE TABLE IF NOT EXISTS simdb_agent_metrics (
    sim_key     INTEGER NOT NULL,
    agent_index INTEGER NOT NULL,
    metric_id   INTEGER NOT NULL,
    step        INTEGER NOT NULL CHECK (step >= 0),
    value       REAL NOT NULL,
    PRIMARY KEY (sim_key, metric_id, agent_index, step)
) WITHOUT ROWID;
