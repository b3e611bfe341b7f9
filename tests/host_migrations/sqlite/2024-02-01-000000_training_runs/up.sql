-- The host's second migration: its training runs point at simdb's runs.
CREATE TABLE training_runs (
    id INTEGER PRIMARY KEY NOT NULL,
    policy TEXT NOT NULL,
    simulation_key INTEGER NOT NULL REFERENCES simdb_simulations (sim_key) ON DELETE RESTRICT
);
