CREATE TABLE agent_states_old (
    sim_key     INTEGER NOT NULL,
    agent_index INTEGER NOT NULL,
    step        INTEGER NOT NULL CHECK (step >= 0),
    reward      REAL NOT NULL,
    state       TEXT NOT NULL,
    PRIMARY KEY (sim_key, agent_index, step),
    FOREIGN KEY (sim_key, agent_index) REFERENCES agents (sim_key, agent_index) ON DELETE CASCADE
) WITHOUT ROWID;
INSERT INTO agent_states_old SELECT sim_key, agent_index, step, reward, state FROM agent_states;
DROP TABLE agent_states;
ALTER TABLE agent_states_old RENAME TO agent_states;
CREATE INDEX agent_states_by_step ON agent_states (sim_key, step);

CREATE TABLE agent_metrics_old (
    sim_key     INTEGER NOT NULL,
    agent_index INTEGER NOT NULL,
    metric_id   INTEGER NOT NULL REFERENCES metric_names (metric_id),
    step        INTEGER NOT NULL CHECK (step >= 0),
    value       REAL NOT NULL,
    PRIMARY KEY (sim_key, agent_index, metric_id, step),
    FOREIGN KEY (sim_key, agent_index) REFERENCES agents (sim_key, agent_index) ON DELETE CASCADE
) WITHOUT ROWID;
INSERT INTO agent_metrics_old SELECT sim_key, agent_index, metric_id, step, value FROM agent_metrics;
DROP TABLE agent_metrics;
ALTER TABLE agent_metrics_old RENAME TO agent_metrics;
CREATE INDEX agent_metrics_by_step ON agent_metrics (sim_key, metric_id, step);

CREATE TABLE agent_memories_old (
    sim_key     INTEGER NOT NULL,
    agent_index INTEGER NOT NULL,
    step        INTEGER NOT NULL CHECK (step >= 0),
    dtype       TEXT NOT NULL,
    shape       TEXT NOT NULL,
    data        BLOB NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (sim_key, agent_index, step),
    FOREIGN KEY (sim_key, agent_index) REFERENCES agents (sim_key, agent_index) ON DELETE CASCADE
) WITHOUT ROWID;
INSERT INTO agent_memories_old SELECT sim_key, agent_index, step, dtype, shape, data, recorded_at FROM agent_memories;
DROP TABLE agent_memories;
ALTER TABLE agent_memories_old RENAME TO agent_memories;
