-- Rollups written at ingest, in the transaction of the rows they sum: per
-- simulation, field and step, across agents ('' in kind) and per agent kind
-- ('(none)' for agents without one): count, sum, min, max and the sum of
-- squares (for a standard deviation). field_id 0 is the reward, any other
-- an agent metric's metric_id. Charts, comparisons and the dashboard read
-- these instead of the rows. (A square that would overflow counts as
-- infinity here, as it does when the writer computes it.)
CREATE TABLE simdb_step_rollups (
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

-- Per agent: rows and reward total (the agent table of a summary).
CREATE TABLE simdb_agent_totals (
    sim_key     INTEGER NOT NULL REFERENCES simdb_simulations (sim_key) ON DELETE CASCADE,
    agent_index INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    total       REAL NOT NULL,
    PRIMARY KEY (sim_key, agent_index)
) WITHOUT ROWID;

-- Every row recorded before this release, rolled up once.
INSERT INTO simdb_step_rollups (sim_key, field_id, kind, step, n, total, lo, hi, total_sq)
    SELECT sim_key, 0, '', step, COUNT(*), SUM(reward), MIN(reward), MAX(reward), SUM(CASE WHEN ABS(reward) < 1e150 THEN reward * reward ELSE 9e999 END)
    FROM simdb_agent_states GROUP BY sim_key, step;
INSERT INTO simdb_step_rollups (sim_key, field_id, kind, step, n, total, lo, hi, total_sq)
    SELECT s.sim_key, 0, COALESCE(a.kind, '(none)'), s.step, COUNT(*), SUM(s.reward),
           MIN(s.reward), MAX(s.reward), SUM(CASE WHEN ABS(s.reward) < 1e150 THEN s.reward * s.reward ELSE 9e999 END)
    FROM simdb_agent_states s JOIN simdb_agents a ON a.sim_key = s.sim_key AND a.agent_index = s.agent_index
    GROUP BY s.sim_key, COALESCE(a.kind, '(none)'), s.step;
INSERT INTO simdb_step_rollups (sim_key, field_id, kind, step, n, total, lo, hi, total_sq)
    SELECT sim_key, metric_id, '', step, COUNT(*), SUM(value), MIN(value), MAX(value), SUM(CASE WHEN ABS(value) < 1e150 THEN value * value ELSE 9e999 END)
    FROM simdb_agent_metrics GROUP BY sim_key, metric_id, step;
INSERT INTO simdb_step_rollups (sim_key, field_id, kind, step, n, total, lo, hi, total_sq)
    SELECT m.sim_key, m.metric_id, COALESCE(a.kind, '(none)'), m.step, COUNT(*), SUM(m.value),
           MIN(m.value), MAX(m.value), SUM(CASE WHEN ABS(m.value) < 1e150 THEN m.value * m.value ELSE 9e999 END)
    FROM simdb_agent_metrics m JOIN simdb_agents a ON a.sim_key = m.sim_key AND a.agent_index = m.agent_index
    GROUP BY m.sim_key, m.metric_id, COALESCE(a.kind, '(none)'), m.step;
INSERT INTO simdb_agent_totals (sim_key, agent_index, n, total)
    SELECT sim_key, agent_index, COUNT(*), SUM(reward) FROM simdb_agent_states GROUP BY sim_key, agent_index;
