-- The host application's own schema: policies it trains, and the training
-- runs that simdb recorded (a foreign key into simdb's simulations).
CREATE TABLE policies (
    policy_id INTEGER PRIMARY KEY NOT NULL,
    name      TEXT NOT NULL UNIQUE,
    version   INTEGER NOT NULL
);
CREATE TABLE training_runs (
    run_id         INTEGER PRIMARY KEY NOT NULL,
    policy_id      INTEGER NOT NULL REFERENCES policies (policy_id),
    simulation_key INTEGER NOT NULL REFERENCES simdb_simulations (sim_key) ON DELETE RESTRICT
);
