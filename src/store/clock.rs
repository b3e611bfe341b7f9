//! The database's clock. Heartbeats, leases and staleness are judged by the
//! database's time, never by the clocks of the hosts that record or read, so
//! two machines whose clocks disagree still agree on who is alive.

use diesel::dsl::sql;
use diesel::expression::SqlLiteral;
use diesel::sql_types::Nullable;

use crate::sql_types::Timestamptz;

/// The longest age simdb computes with: 100 years. `now - age` beyond it
/// would leave the range of timestamps both backends can hold.
pub(crate) const MAX_AGE_SECS: f64 = 100.0 * 365.25 * 86_400.0;

/// `secs` as a fixed-point literal within `0..=MAX_AGE_SECS`. Only numbers
/// reach SQL text this way, never caller text.
fn seconds(secs: f64) -> String {
    let secs = if secs.is_finite() { secs } else { MAX_AGE_SECS };
    format!("{:.6}", secs.clamp(0.0, MAX_AGE_SECS))
}

/// Time expressions of the connection's database.
pub(crate) trait Clock {
    /// The database's current time.
    fn db_now() -> SqlLiteral<Nullable<Timestamptz>>;
    /// The database's current time minus `secs` (clamped to 0..=100 years).
    fn db_ago(secs: f64) -> SqlLiteral<Nullable<Timestamptz>>;
}

#[cfg(feature = "sqlite")]
impl Clock for diesel::sqlite::SqliteConnection {
    // The same text shape as every stored timestamp (microseconds, +00:00),
    // so that comparisons of the text are comparisons of the instants.
    fn db_now() -> SqlLiteral<Nullable<Timestamptz>> {
        sql("(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000+00:00')")
    }
    fn db_ago(secs: f64) -> SqlLiteral<Nullable<Timestamptz>> {
        sql(&format!(
            "(strftime('%Y-%m-%d %H:%M:%f', 'now', '-{} seconds') || '000+00:00')",
            seconds(secs)
        ))
    }
}

#[cfg(feature = "postgres")]
impl Clock for diesel::pg::PgConnection {
    fn db_now() -> SqlLiteral<Nullable<Timestamptz>> {
        sql("statement_timestamp()")
    }
    fn db_ago(secs: f64) -> SqlLiteral<Nullable<Timestamptz>> {
        sql(&format!(
            "(statement_timestamp() - interval '{} seconds')",
            seconds(secs)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_clamped_numbers() {
        assert_eq!(seconds(1.5), "1.500000");
        assert_eq!(seconds(-3.0), "0.000000");
        assert_eq!(seconds(f64::NAN), seconds(MAX_AGE_SECS));
        assert_eq!(seconds(1e300), seconds(MAX_AGE_SECS));
        assert!(seconds(1e300)
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.'));
    }
}
