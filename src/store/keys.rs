//! Simulation keys that are never handed out twice.
//!
//! PostgreSQL's identity sequence never reuses a value. SQLite's `INTEGER
//! PRIMARY KEY` hands out `max(sim_key) + 1`, so deleting the newest
//! simulation would give its key to the next one, and a recorder still
//! writing for the deleted run could land rows in the new one. On SQLite the
//! key therefore comes from the `key_sequences` table, which only counts up.

use crate::error::Result;

/// Allocates the key of a new simulation.
pub(crate) trait KeyAllocator {
    /// The key to insert with, or `None` to let the database assign it.
    fn next_sim_key(&mut self) -> Result<Option<i32>>;
}

#[cfg(feature = "sqlite")]
impl KeyAllocator for diesel::sqlite::SqliteConnection {
    fn next_sim_key(&mut self) -> Result<Option<i32>> {
        use diesel::prelude::*;

        #[derive(QueryableByName)]
        struct Allocated {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            last_value: i32,
        }
        // Also past any key inserted explicitly, so that the two can never meet.
        let key: Allocated = diesel::sql_query(
            "UPDATE simdb_key_sequences \
             SET last_value = MAX(last_value, (SELECT COALESCE(MAX(sim_key), 0) FROM simdb_simulations)) + 1 \
             WHERE name = 'simulations' RETURNING last_value",
        )
        .get_result(self)?;
        Ok(Some(key.last_value))
    }
}

#[cfg(feature = "postgres")]
impl KeyAllocator for diesel::pg::PgConnection {
    fn next_sim_key(&mut self) -> Result<Option<i32>> {
        Ok(None)
    }
}
