DROP TABLE training_runs;
DROP TABLE policies;
