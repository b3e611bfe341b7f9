-- Hot tables: the per-agent, per-step tables keep only their primary key
-- (see the PostgreSQL migration of the same name for the reasons). SQLite
-- cannot drop a foreign key, so each table is rebuilt, rows copied in key
-- order.
CREATE TABLE agent_states_new (
    sim_key     INTEGER NOT NULL,
    agent_index INTEGER NOT NULL,
    step        INTEGER NOT NULL CHECK (step >= 0),
    reward      REAL NOT NULL,
    state       TEXT NOT NULL,
    PRIMARY KEY (sim_key, agent_index, step)
) WITHOUT ROWID;
INSERT INTO agent_states_new SELECT sim_key, agent_index, step, reward, state
    FROM agent_states ORDER BY sim_key, agent_index, step;
DROP TABLE agent_states;
ALTER TABLE agent_states_new RENAME TO agent_states;

CREATE TABLE agent_metrics_new (
    sim_key     INTEGER NOT NULL,
    agent_index INTEGER NOT NULL,
    metric_id   INTEGER NOT NULL,
    step        INTEGER NOT NULL CHECK (step >= 0),
    value       REAL NOT NULL,
    PRIMARY KEY (sim_key, metric_id, agent_index, step)
) WITHOUT ROWID;
INSERT INTO agent_metrics_new SELECT sim_key, agent_index, metric_id, step, value
    FROM agent_metrics ORDER BY sim_key, metric_id, agent_index, step;
DROP TABLE agent_metrics;
ALTER TABLE agent_metrics_new RENAME TO agent_metrics;

CREATE TABLE agent_memories_new (
    sim_key     INTEGER NOT NULL,
    agent_index INTEGER NOT NULL,
    step        INTEGER NOT NULL CHECK (step >= 0),
    dtype       TEXT NOT NULL,
    shape       TEXT NOT NULL,
    data        BLOB NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (sim_key, agent_index, step)
) WITHOUT ROWID;
INSERT INTO agent_memories_new SELECT sim_key, agent_index, step, dtype, shape, data, recorded_at
    FROM agent_memories ORDER BY sim_key, agent_index, step;
DROP TABLE agent_memories;
ALTER TABLE agent_memories_new RENAME TO agent_memories;
