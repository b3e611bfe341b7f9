DROP TABLE simdb_pending_deletes;
