-- The host application's own schema, in `public`: policies it trains, and
-- the training runs that simdb recorded (a foreign key into simdb's schema).
CREATE TABLE policies (
    policy_id SERIAL PRIMARY KEY,
    name      TEXT NOT NULL UNIQUE,
    version   INTEGER NOT NULL
);
CREATE TABLE training_runs (
    run_id         SERIAL PRIMARY KEY,
    policy_id      INTEGER NOT NULL REFERENCES policies (policy_id),
    simulation_key INTEGER NOT NULL REFERENCES simdb.simdb_simulations (sim_key) ON DELETE RESTRICT
);
