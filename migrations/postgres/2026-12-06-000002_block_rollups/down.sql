DROP TABLE simdb_block_rollups;
