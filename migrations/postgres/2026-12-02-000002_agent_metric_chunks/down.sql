-- Back to the row layout, empty: chunks cannot be unfolded in SQL. The
-- constraint keeps the name the earlier migrations' down scripts expect.
DROP TABLE simdb_agent_metric_chunks;
CREATE TABLE IF NOT EXISTS simdb_agent_metrics (
    sim_key     INTEGER NOT NULL,
    agent_index INTEGER NOT NULL,
    metric_id   INTEGER NOT NULL,
    step        BIGINT NOT NULL CHECK (step >= 0),
    value       DOUBLE PRECISION NOT NULL,
    CONSTRAINT agent_metrics_pkey PRIMARY KEY (sim_key, metric_id, agent_index, step)
);
