CREATE TABLE simdb_agent_states_old (
    sim_key     INTEGER NOT NULL,
    agent_index INTEGER NOT NULL,
    step        INTEGER NOT NULL CHECK (step >= 0),
    reward      REAL NOT NULL,
    state       TEXT NOT NULL,
    PRIMARY KEY (sim_key, agent_index, step),
    FOREIGN KEY (sim_key, agent_index) REFERENCES simdb_agents (sim_key, agent_index) ON DELETE CASCADE
) WITHOUT ROWID;
INSERT INTO simdb_agent_states_old SELECT sim_key, agent_index, step, reward, state FROM simdb_agent_states;
DROP TABLE simdb_agent_states;
ALTER TABLE simdb_agent_states_old RENAME TO simdb_agent_states;
CREATE INDEX simdb_agent_states_by_step ON simdb_agent_states (sim_key, step);

CREATE TABLE simdb_agent_metrics_old (
    sim_key     INTEGER NOT NULL,
    agent_index INTEGER NOT NULL,
    metric_id   INTEGER NOT NULL REFERENCES simdb_metric_names (metric_id),
    step        INTEGER NOT NULL CHECK (step >= 0),
    value       REAL NOT NULL,
    PRIMARY KEY (sim_key, agent_index, metric_id, step),
    FOREIGN KEY (sim_key, agent_index) REFERENCES simdb_agents (sim_key, agent_index) ON DELETE CASCADE
) WITHOUT ROWID;
INSERT INTO simdb_agent_metrics_old SELECT sim_key, agent_index, metric_id, step, value FROM simdb_agent_metrics;
DROP TABLE simdb_agent_metrics;
ALTER TABLE simdb_agent_metrics_old RENAME TO simdb_agent_metrics;
CREATE INDEX simdb_agent_metrics_by_step ON simdb_agent_metrics (sim_key, metric_id, step);

CREATE TABLE simdb_agent_memories_old (
    sim_key     INTEGER NOT NULL,
    agent_index INTEGER NOT NULL,
    step        INTEGER NOT NULL CHECK (step >= 0),
    dtype       TEXT NOT NULL,
    shape       TEXT NOT NULL,
    data        BLOB NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (sim_key, agent_index, step),
    FOREIGN KEY (sim_key, agent_index) REFERENCES simdb_agents (sim_key, agent_index) ON DELETE CASCADE
) WITHOUT ROWID;
INSERT INTO simdb_agent_memories_old SELECT sim_key, agent_index, step, dtype, shape, data, recorded_at FROM simdb_agent_memories;
DROP TABLE simdb_agent_memories;
ALTER TABLE simdb_agent_memories_old RENAME TO simdb_agent_memories;
