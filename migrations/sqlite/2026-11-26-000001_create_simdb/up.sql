-- simdb schema v1 for SQLite. JSON is stored as text, timestamps as UTC text.
-- Per-step tables are keyed by the integer `sim_key` (a rowid alias), never by
-- the 64-character public id, and are WITHOUT ROWID so that the primary key is
-- the clustered order: one agent's series is a contiguous range.

CREATE TABLE simdb_experiments (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL UNIQUE,
    description  TEXT NOT NULL DEFAULT '',
    metadata     TEXT NOT NULL DEFAULT '{}',
    external_ref TEXT,
    created_at   TEXT NOT NULL
);

CREATE TABLE simdb_simulations (
    sim_key         INTEGER PRIMARY KEY NOT NULL,
    id              TEXT NOT NULL UNIQUE,
    experiment_id   TEXT REFERENCES simdb_experiments (id) ON DELETE RESTRICT,
    name            TEXT,
    status          TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled', 'interrupted')),
    parameters      TEXT NOT NULL,
    results_summary TEXT,
    data_uri        TEXT,
    error_message   TEXT,
    created_at      TEXT NOT NULL,
    started_at      TEXT,
    ended_at        TEXT,
    heartbeat_at    TEXT
);
CREATE INDEX simdb_simulations_experiment ON simdb_simulations (experiment_id, sim_key);
CREATE INDEX simdb_simulations_status ON simdb_simulations (status, sim_key);

CREATE TABLE simdb_simulation_tags (
    sim_key INTEGER NOT NULL REFERENCES simdb_simulations (sim_key) ON DELETE CASCADE,
    tag     TEXT NOT NULL,
    PRIMARY KEY (sim_key, tag)
) WITHOUT ROWID;
CREATE INDEX simdb_simulation_tags_tag ON simdb_simulation_tags (tag, sim_key);

CREATE TABLE simdb_agents (
    sim_key        INTEGER NOT NULL REFERENCES simdb_simulations (sim_key) ON DELETE CASCADE,
    agent_index    INTEGER NOT NULL CHECK (agent_index >= 0),
    name           TEXT,
    kind           TEXT,
    policy_name    TEXT,
    policy_version INTEGER,
    checkpoint_uri TEXT,
    metadata       TEXT NOT NULL DEFAULT '{}',
    created_at     TEXT NOT NULL,
    PRIMARY KEY (sim_key, agent_index)
) WITHOUT ROWID;

CREATE TABLE simdb_agent_states (
    sim_key     INTEGER NOT NULL,
    agent_index INTEGER NOT NULL,
    step        INTEGER NOT NULL CHECK (step >= 0),
    reward      REAL NOT NULL,
    state       TEXT NOT NULL,
    PRIMARY KEY (sim_key, agent_index, step),
    FOREIGN KEY (sim_key, agent_index) REFERENCES simdb_agents (sim_key, agent_index) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX simdb_agent_states_by_step ON simdb_agent_states (sim_key, step);

CREATE TABLE simdb_simulation_steps (
    sim_key     INTEGER NOT NULL REFERENCES simdb_simulations (sim_key) ON DELETE CASCADE,
    step        INTEGER NOT NULL CHECK (step >= 0),
    recorded_at TEXT NOT NULL,
    metrics     TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (sim_key, step)
) WITHOUT ROWID;

CREATE TABLE simdb_metric_names (
    metric_id INTEGER PRIMARY KEY NOT NULL,
    name      TEXT NOT NULL UNIQUE
);

CREATE TABLE simdb_step_metrics (
    sim_key   INTEGER NOT NULL REFERENCES simdb_simulations (sim_key) ON DELETE CASCADE,
    metric_id INTEGER NOT NULL REFERENCES simdb_metric_names (metric_id),
    step      INTEGER NOT NULL CHECK (step >= 0),
    value     REAL NOT NULL,
    PRIMARY KEY (sim_key, metric_id, step)
) WITHOUT ROWID;

CREATE TABLE simdb_agent_metrics (
    sim_key     INTEGER NOT NULL,
    agent_index INTEGER NOT NULL,
    metric_id   INTEGER NOT NULL REFERENCES simdb_metric_names (metric_id),
    step        INTEGER NOT NULL CHECK (step >= 0),
    value       REAL NOT NULL,
    PRIMARY KEY (sim_key, agent_index, metric_id, step),
    FOREIGN KEY (sim_key, agent_index) REFERENCES simdb_agents (sim_key, agent_index) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX simdb_agent_metrics_by_step ON simdb_agent_metrics (sim_key, metric_id, step);

CREATE TABLE simdb_agent_memories (
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

CREATE TABLE simdb_events (
    event_id    INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    sim_key     INTEGER NOT NULL REFERENCES simdb_simulations (sim_key) ON DELETE CASCADE,
    occurred_at TEXT NOT NULL,
    kind        TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT,
    message     TEXT,
    data        TEXT
);
CREATE INDEX simdb_events_by_simulation ON simdb_events (sim_key, event_id);
