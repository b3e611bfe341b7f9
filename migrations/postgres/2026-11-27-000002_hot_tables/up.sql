-- Hot tables: the per-agent, per-step tables keep only their primary key.
--
-- * No per-row foreign keys: the writer refuses unregistered agents and
--   unknown metrics before a row is sent, and deleting a simulation deletes
--   these rows explicitly, after locking the simulation's row (which every
--   batch's ownership check also locks). The check cost ~60% of COPY time.
-- * No by-step secondary indexes: "all agents at one step" reads the primary
--   key once per registered agent (`agent_index = ANY(ARRAY(SELECT ...))`).
-- * agent_metrics is keyed metric-first, so one metric of every agent is one
--   contiguous key range (aggregates, final values) and one agent's series
--   of one metric is still one range.
ALTER TABLE agent_states DROP CONSTRAINT agent_states_sim_key_agent_index_fkey;
DROP INDEX agent_states_by_step;

ALTER TABLE agent_metrics DROP CONSTRAINT agent_metrics_sim_key_agent_index_fkey;
ALTER TABLE agent_metrics DROP CONSTRAINT agent_metrics_metric_id_fkey;
DROP INDEX agent_metrics_by_step;
ALTER TABLE agent_metrics DROP CONSTRAINT agent_metrics_pkey;
ALTER TABLE agent_metrics ADD PRIMARY KEY (sim_key, metric_id, agent_index, step);

ALTER TABLE agent_memories DROP CONSTRAINT agent_memories_sim_key_agent_index_fkey;

-- Agent states as JSON text, kept as written: cheaper to ingest (no JSONB
-- conversion per row) and to read whole, and smaller for these small
-- documents. Path reads (`#>`, `#>>`, `json_typeof`) work on JSON; nothing
-- simdb runs on states needs JSONB's containment or equality operators.
-- (Parameters, metadata and summaries stay JSONB: they are searched.)
ALTER TABLE agent_states ALTER COLUMN state TYPE json USING state::json;

ANALYZE agent_states;
ANALYZE agent_metrics;
