ALTER TABLE simdb_simulations DROP COLUMN batch_seq;
ALTER TABLE simdb_simulations DROP COLUMN lease_token;
ALTER TABLE simdb_simulations DROP COLUMN committed_step;
DROP TABLE simdb_key_sequences;
