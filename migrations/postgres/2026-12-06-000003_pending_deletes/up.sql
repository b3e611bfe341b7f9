-- Runs being deleted. A delete removes the simulation's row (and what
-- cascades from it) and records its key here in one short transaction,
-- then removes the rows of the tables without a foreign key (chunks,
-- memories, rollups, totals) in bounded transactions, other writers
-- going on between them, and finally this row. A delete cut short (a
-- crash) is finished by the next delete. Simulation keys are never
-- reused, so no new run can meet a deleted run's rows.
CREATE TABLE simdb_pending_deletes (
    sim_key INTEGER PRIMARY KEY NOT NULL
);
