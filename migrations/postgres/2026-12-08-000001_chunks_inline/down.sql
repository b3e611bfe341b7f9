ALTER TABLE simdb_agent_metric_chunks RESET (toast_tuple_target);
ALTER TABLE simdb_agent_state_chunks RESET (toast_tuple_target);
