//! Portable SQL types used by [`crate::schema`].
//!
//! One Diesel schema serves both backends, so the two column kinds whose
//! storage differs between them get a type of their own here:
//!
//! | type | PostgreSQL | SQLite | Rust |
//! |---|---|---|---|
//! | [`Jsonb`] | `JSONB` | `TEXT` holding JSON | [`serde_json::Value`] (bind as [`JsonParam`]) |
//! | [`Json`] | `JSON` (text, kept as written) | `TEXT` holding JSON | [`serde_json::Value`] (bind as [`JsonParam`]) |
//! | [`Timestamptz`] | `TIMESTAMPTZ` | `TEXT`, UTC (`YYYY-MM-DD HH:MM:SS.ffffff+00:00`) | [`chrono::DateTime<Utc>`] (bind as [`TimeParam`]) |
//!
//! Every conversion delegates to Diesel's own implementation for the backend,
//! so values round-trip exactly as Diesel stores them natively.

use chrono::{DateTime, Utc};
use diesel::deserialize::{self, FromSql};
use diesel::expression::AsExpression;
#[cfg(feature = "postgres")]
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::SqlType;
#[cfg(feature = "sqlite")]
use diesel::sqlite::{Sqlite, SqliteValue};
use serde_json::Value;

/// Bytes: `BYTEA` on PostgreSQL, `BLOB` on SQLite. (Diesel defines its
/// `Bytea` alias only with the PostgreSQL backend; the schema is generated
/// from PostgreSQL and must also build for SQLite alone.)
pub type Bytea = diesel::sql_types::Binary;

/// JSON document: `JSONB` on PostgreSQL, JSON text on SQLite.
#[derive(Debug, Clone, Copy, Default, SqlType, diesel::query_builder::QueryId)]
#[diesel(postgres_type(oid = 3802, array_oid = 3807))]
#[diesel(sqlite_type(name = "Text"))]
pub struct Jsonb;

/// JSON document kept as written: `JSON` on PostgreSQL (the agent states:
/// cheaper to ingest and to read whole than `JSONB`, see the hot-tables
/// migration), JSON text on SQLite.
#[derive(Debug, Clone, Copy, Default, SqlType, diesel::query_builder::QueryId)]
#[diesel(postgres_type(oid = 114, array_oid = 199))]
#[diesel(sqlite_type(name = "Text"))]
pub struct Json;

/// Instant in UTC: `TIMESTAMPTZ` on PostgreSQL, UTC text on SQLite.
#[derive(Debug, Clone, Copy, Default, SqlType, diesel::query_builder::QueryId)]
#[diesel(postgres_type(oid = 1184, array_oid = 1185))]
#[diesel(sqlite_type(name = "Text"))]
pub struct Timestamptz;

// The `table!` macro gives every column named like a date/time type the
// arithmetic operators; simdb never does timestamp arithmetic in SQL.
impl diesel::sql_types::ops::Add for Timestamptz {
    type Rhs = Timestamptz;
    type Output = Timestamptz;
}
impl diesel::sql_types::ops::Sub for Timestamptz {
    type Rhs = Timestamptz;
    type Output = Timestamptz;
}

/// A JSON value as a bind parameter of a [`Jsonb`] column, for inserts and
/// filters (`metadata.eq(JsonParam(value))`).
///
/// Query results come back as plain [`serde_json::Value`]; this wrapper is
/// needed only on the way in, because Rust's orphan rule forbids Diesel's
/// `AsExpression` for a foreign type such as `Value`.
#[derive(Debug, Clone, PartialEq, AsExpression)]
#[diesel(sql_type = Jsonb)]
#[diesel(sql_type = Json)]
pub struct JsonParam(pub Value);

impl From<Value> for JsonParam {
    fn from(value: Value) -> Self {
        JsonParam(value)
    }
}

/// A UTC instant as a bind parameter of a [`Timestamptz`] column
/// (`heartbeat_at.lt(TimeParam(cutoff))`). Results come back as
/// [`chrono::DateTime<Utc>`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, AsExpression)]
#[diesel(sql_type = Timestamptz)]
pub struct TimeParam(pub DateTime<Utc>);

impl From<DateTime<Utc>> for TimeParam {
    fn from(at: DateTime<Utc>) -> Self {
        TimeParam(at)
    }
}

/// Implements `FromSql`/`ToSql` of a portable SQL type by delegating to the
/// Diesel SQL type that stores it natively on one backend.
macro_rules! delegate {
    ($backend:ty, $raw:ty, $portable:ty => $native:ty, $rust:ty, $param:ident) => {
        impl FromSql<$portable, $backend> for $rust {
            fn from_sql(value: $raw) -> deserialize::Result<Self> {
                <$rust as FromSql<$native, $backend>>::from_sql(value)
            }
        }
        impl ToSql<$portable, $backend> for $param {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, $backend>) -> serialize::Result {
                <$rust as ToSql<$native, $backend>>::to_sql(&self.0, out)
            }
        }
    };
}

#[cfg(feature = "postgres")]
delegate!(Pg, PgValue<'_>, Jsonb => diesel::sql_types::Jsonb, Value, JsonParam);
#[cfg(feature = "postgres")]
delegate!(Pg, PgValue<'_>, Json => diesel::sql_types::Json, Value, JsonParam);
#[cfg(feature = "postgres")]
delegate!(Pg, PgValue<'_>, Timestamptz => diesel::sql_types::Timestamptz, DateTime<Utc>, TimeParam);
#[cfg(feature = "sqlite")]
delegate!(Sqlite, SqliteValue<'_, '_, '_>, Jsonb => diesel::sql_types::Json, Value, JsonParam);
#[cfg(feature = "sqlite")]
delegate!(Sqlite, SqliteValue<'_, '_, '_>, Json => diesel::sql_types::Json, Value, JsonParam);

#[cfg(feature = "sqlite")]
impl FromSql<Timestamptz, Sqlite> for DateTime<Utc> {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        <DateTime<Utc> as FromSql<diesel::sql_types::TimestamptzSqlite, Sqlite>>::from_sql(value)
    }
}

/// Microseconds, like PostgreSQL: a value moved between backends is equal.
#[cfg(feature = "sqlite")]
impl ToSql<Timestamptz, Sqlite> for TimeParam {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.0.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string());
        Ok(serialize::IsNull::No)
    }
}

/// Already-serialized JSON text, written without re-parsing: a step's
/// metrics as the recorder serialized them, on the caller's thread. Owns
/// its text so that rows are `'static`, which lets Diesel cache the
/// prepared multi-row INSERT.
#[derive(Debug, Clone, AsExpression)]
#[diesel(sql_type = Jsonb)]
#[diesel(sql_type = Json)]
pub(crate) struct RawJson(Box<str>);

impl RawJson {
    /// A copy of `text` (one small copy per step row, never a batch's
    /// whole text).
    pub(crate) fn copied(text: &str) -> Self {
        RawJson(text.into())
    }

    fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(feature = "postgres")]
impl ToSql<Jsonb, Pg> for RawJson {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        use std::io::Write;
        // JSONB's binary wire format: a version byte (1) followed by JSON text.
        out.write_all(&[1])?;
        out.write_all(self.as_str().as_bytes())?;
        Ok(serialize::IsNull::No)
    }
}

#[cfg(feature = "postgres")]
impl ToSql<Json, Pg> for RawJson {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        use std::io::Write;
        // JSON's binary wire format is its text.
        out.write_all(self.as_str().as_bytes())?;
        Ok(serialize::IsNull::No)
    }
}

#[cfg(feature = "sqlite")]
impl ToSql<Json, Sqlite> for RawJson {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.as_str());
        Ok(serialize::IsNull::No)
    }
}

#[cfg(feature = "sqlite")]
impl ToSql<Jsonb, Sqlite> for RawJson {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.as_str());
        Ok(serialize::IsNull::No)
    }
}
