-- Agent states in chunks: one row per agent and 64 aligned steps (chunk c
-- holds steps 64c .. 64c+63), instead of one row per agent-step.
--
-- * present: bit i set where step 64c+i was recorded (agents that join
--   late or skip steps leave bits clear).
-- * rewards: the present steps' rewards as little-endian float8, step order.
-- * states: the present steps' JSON texts, as written, zstd-compressed
--   (see src/chunk/states.rs for the byte layout).
--
-- Both blobs are already compact: PostgreSQL is told not to try its own
-- compression on them (STORAGE EXTERNAL).
--
-- The rows of simdb_agent_states are folded into chunks by simdb itself,
-- right after this migration and in the same transaction (compression
-- cannot be written in SQL); that step then drops the row table.
CREATE TABLE simdb_agent_state_chunks (
    sim_key     INTEGER NOT NULL,
    agent_index INTEGER NOT NULL,
    chunk       BIGINT NOT NULL CHECK (chunk >= 0),
    present     BIGINT NOT NULL CHECK (present <> 0),
    rewards     BYTEA NOT NULL,
    states      BYTEA NOT NULL,
    PRIMARY KEY (sim_key, agent_index, chunk)
);
ALTER TABLE simdb_agent_state_chunks ALTER COLUMN rewards SET STORAGE EXTERNAL;
ALTER TABLE simdb_agent_state_chunks ALTER COLUMN states SET STORAGE EXTERNAL;
