-- Hot tables: the per-agent, per-step tables keep only their primary key
-- (see the PostgreSQL migration of the same name for the reasons). SQLite
-- cannot drop a foreign key, so each table is rebuilt, rows copied in key
-- order.
CREATE TABLE simdb_agent_states_new (
    sim_key     INTEGER NOT NULL,
    agent_index INTEGER NOT NULL,
    step        INTEGER NOT NULL CHECK (step >= 0),
    reward      REAL NOT NULL,
    state       TEXT NOT NULL,
    PRIMARY KEY (sim_key, agent_index, step)
) WITHOUT ROWID;
INSERT INTO simdb_agent_states_new SELECT sim_key, agent_index, step, reward, state
    FROM simdb_agent_states ORDER BY sim_key, agent_index, step;
DROP TABLE simdb_agent_states;
ALTER TABLE simdb_agent_states_new RENAME TO simdb_agent_states;

CREATE TABLE simdb_agent_metrics_new (
    sim_key     INTEGER NOT NULL,
    agent_index INTEGER NOT NULL,
    metric_id   INTEGER NOT NULL,
    step        INTEGER NOT NULL CHECK (step >= 0),
    value       REAL NOT NULL,
    PRIMARY KEY (sim_key, metric_id, agent_index, step)
) WITHOUT ROWID;
INSERT INTO simdb_agent_metrics_new SELECT sim_key, agent_index, metric_id, step, value
    FROM simdb_agent_metrics ORDER BY sim_key, metric_id, agent_index, step;
DROP TABLE simdb_agent_metrics;
ALTER TABLE simdb_agent_metrics_new RENAME TO simdb_agent_metrics;

CREATE TABLE simdb_agent_memories_new (
    sim_key     INTEGER NOT NULL,
    agent_index INTEGER NOT NULL,
    step        INTEGER NOT NULL CHECK (step >= 0),
    dtype       TEXT NOT NULL,
    shape       TEXT NOT NULL,
    data        BLOB NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (sim_key, agent_index, step)
) WITHOUT ROWID;
INSERT INTO simdb_agent_memories_new SELECT sim_key, agent_index, step, dtype, shape, data, recorded_at
    FROM simdb_agent_memories ORDER BY sim_key, agent_index, step;
DROP TABLE simdb_agent_memories;
ALTER TABLE simdb_agent_memories_new RENAME TO simdb_agent_memories;
