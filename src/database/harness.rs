//! The migration harness of simdb's own ledgers (SQLite's
//! `simdb_migrations`, PostgreSQL's `<schema>.simdb_migrations`): Diesel's
//! harness, booking each migration in the ledger in the migration's own
//! transaction. One body for both backends; each ledger says how to reach
//! its connection and its table (`conn`, `insert_sql`, `delete_sql`,
//! `booked`).

/// Implements `MigrationHarness<$backend>` for `$harness`, which provides
/// `fn conn(&mut self) -> &mut $conn`, `fn insert_sql(&self) -> String`
/// and `fn delete_sql(&self) -> String` (one bound version parameter), and
/// `fn booked(&mut self) -> crate::Result<Vec<String>>` (oldest first).
/// `'v1', 'v2'`: simdb's own version strings (digits only), for SQL text.
pub(crate) fn version_list(versions: &[String]) -> String {
    versions
        .iter()
        .map(|v| {
            format!(
                "'{}'",
                v.chars().filter(char::is_ascii_digit).collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

macro_rules! ledger_harness {
    ($harness:ident, $conn:ty, $backend:ty) => {
        impl $harness<'_> {
            /// Runs `step` (a migration's up or down) and `book` (its ledger
            /// change, given the version) together: in one transaction
            /// unless the migration says otherwise.
            fn apply(
                &mut self,
                migration: &dyn diesel::migration::Migration<$backend>,
                step: impl Fn(&mut $conn) -> diesel::migration::Result<()>,
                book: &str,
            ) -> diesel::migration::Result<diesel::migration::MigrationVersion<'static>> {
                use diesel::{Connection, RunQueryDsl};
                let version = migration.name().version().as_owned();
                let apply = |conn: &mut $conn| -> diesel::migration::Result<()> {
                    step(conn)?;
                    diesel::sql_query(book)
                        .bind::<diesel::sql_types::Text, _>(version.to_string())
                        .execute(conn)?;
                    Ok(())
                };
                if migration.metadata().run_in_transaction() {
                    self.conn().transaction(apply)?;
                } else {
                    apply(self.conn())?;
                }
                Ok(version)
            }
        }

        impl diesel_migrations::MigrationHarness<$backend> for $harness<'_> {
            fn run_migration(
                &mut self,
                migration: &dyn diesel::migration::Migration<$backend>,
            ) -> diesel::migration::Result<diesel::migration::MigrationVersion<'static>> {
                let book = self.insert_sql();
                self.apply(migration, |conn| migration.run(conn), &book)
            }

            fn revert_migration(
                &mut self,
                migration: &dyn diesel::migration::Migration<$backend>,
            ) -> diesel::migration::Result<diesel::migration::MigrationVersion<'static>> {
                let book = self.delete_sql();
                self.apply(migration, |conn| migration.revert(conn), &book)
            }

            /// Newest first, as Diesel's own harness returns them.
            fn applied_migrations(
                &mut self,
            ) -> diesel::migration::Result<Vec<diesel::migration::MigrationVersion<'static>>> {
                let mut versions = self.booked()?;
                versions.reverse();
                Ok(versions
                    .into_iter()
                    .map(diesel::migration::MigrationVersion::from)
                    .collect())
            }
        }
    };
}
pub(crate) use ledger_harness;
