ALTER TABLE simulations
    DROP COLUMN batch_seq,
    DROP COLUMN lease_token,
    DROP COLUMN committed_step;
