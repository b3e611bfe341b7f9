ALTER TABLE simulations DROP COLUMN batch_seq;
ALTER TABLE simulations DROP COLUMN lease_token;
ALTER TABLE simulations DROP COLUMN committed_step;
DROP TABLE key_sequences;
