-- Back to the row layout, empty: chunks cannot be unfolded in SQL. The
-- constraint keeps the name the earlier migrations' down scripts expect.
DROP TABLE simdb_agent_state_chunks;
CREATE TABLE IF NOT EXISTS simdb_agent_states (
    sim_key     INTEGER NOT NULL,
    agent_index INTEGER NOT NULL,
    step        BIGINT NOT NULL CHECK (step >= 0),
    reward      DOUBLE PRECISION NOT NULL,
    state       JSON NOT NULL,
    CONSTRAINT agent_states_pkey PRIMARY KEY (sim_key, agent_index, step)
);
