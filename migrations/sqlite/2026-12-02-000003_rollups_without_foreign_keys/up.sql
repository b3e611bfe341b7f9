-- The rollups lose their per-row foreign key to simdb_simulations, as the
-- hot tables did (see the PostgreSQL migration of the same name). SQLite
-- cannot drop a foreign key: each table is rebuilt, rows copied in key
-- order. A table without its foreign key means this ran already: the CHECK
-- fails (SQLite has no RAISE outside triggers).
CREATE TEMP TABLE simdb_expect_foreign_key (found INTEGER CHECK (found > 0));
INSERT INTO simdb_expect_foreign_key
    SELECT COUNT(*) FROM pragma_foreign_key_list('simdb_step_rollups');
DROP TABLE simdb_expect_foreign_key;

CREATE TABLE simdb_step_rollups_new (
    sim_key  INTEGER NOT NULL,
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
INSERT INTO simdb_step_rollups_new (sim_key, field_id, kind, step, n, total, lo, hi, total_sq)
    SELECT sim_key, field_id, kind, step, n, total, lo, hi, total_sq FROM simdb_step_rollups
    ORDER BY sim_key, field_id, kind, step;
DROP TABLE simdb_step_rollups;
ALTER TABLE simdb_step_rollups_new RENAME TO simdb_step_rollups;

CREATE TABLE simdb_agent_totals_new (
    sim_key     INTEGER NOT NULL,
    agent_index INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    total       REAL NOT NULL,
    PRIMARY KEY (sim_key, agent_index)
) WITHOUT ROWID;
INSERT INTO simdb_agent_totals_new (sim_key, agent_index, n, total)
    SELECT sim_key, agent_index, n, total FROM simdb_agent_totals ORDER BY sim_key, agent_index;
DROP TABLE simdb_agent_totals;
ALTER TABLE simdb_agent_totals_new RENAME TO simdb_agent_totals;
