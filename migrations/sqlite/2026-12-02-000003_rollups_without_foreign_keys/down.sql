-- Back to the foreign keys, rows kept.
CREATE TABLE simdb_step_rollups_old (
    sim_key  INTEGER NOT NULL REFERENCES simdb_simulations (sim_key) ON DELETE CASCADE,
    field_id INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    step     INTEGER NOT NULL CHECK (step >= 0),
    n        INTEGER NOT NULL,
    total    REAL NOT NULL,
    lo       REAL NOT NULL,
    hi       REAL NOT NULL,
    total_sq REAL NOT NULL,
    PRIMARY KEY (sim_key, field_id, kind, step)
) WITHOUT ROWID;
INSERT INTO simdb_step_rollups_old SELECT sim_key, field_id, kind, step, n, total, lo, hi, total_sq FROM simdb_step_rollups;
DROP TABLE simdb_step_rollups;
ALTER TABLE simdb_step_rollups_old RENAME TO simdb_step_rollups;

CREATE TABLE simdb_agent_totals_old (
    sim_key     INTEGER NOT NULL REFERENCES simdb_simulations (sim_key) ON DELETE CASCADE,
    agent_index INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    total       REAL NOT NULL,
    PRIMARY KEY (sim_key, agent_index)
) WITHOUT ROWID;
INSERT INTO simdb_agent_totals_old SELECT sim_key, agent_index, n, total FROM simdb_agent_totals;
DROP TABLE simdb_agent_totals;
ALTER TABLE simdb_agent_totals_old RENAME TO simdb_agent_totals;
