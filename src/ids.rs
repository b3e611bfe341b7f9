//! Typed identifiers that cross the public API.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::{Integer, Text};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest public id, in characters.
pub const MAX_ID_LEN: usize = 64;

/// Checks a caller-supplied id or name: not empty, at most `max` characters,
/// no control characters, no surrounding whitespace.
pub(crate) fn validate_text(field: &'static str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    let chars = value.chars().count();
    if chars > max {
        return Err(Error::invalid(
            field,
            format!("is {chars} characters long, at most {max} are allowed"),
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(Error::invalid(
            field,
            format!("contains the control character {:?}", c),
        ));
    }
    if value.trim() != value {
        return Err(Error::invalid(
            field,
            "must not start or end with whitespace",
        ));
    }
    Ok(())
}

/// A fresh id: `<prefix>-<milliseconds since epoch, hex>-<64 random bits, hex>`.
fn generate(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = chrono::Utc::now();
    // RandomState is seeded from OS randomness once per process; hashing a
    // counter and the clock through it yields distinct, unpredictable ids
    // without a dependency on a UUID crate.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_i64(now.timestamp_nanos_opt().unwrap_or_default());
    hasher.write_u32(std::process::id());
    format!(
        "{prefix}-{:011x}-{:016x}",
        now.timestamp_millis(),
        hasher.finish()
    )
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $field:literal, $prefix:literal) => {
        $(#[$doc])*
        ///
        /// At most 64 characters, not empty, no control characters and no
        /// surrounding whitespace; [`Self::new`] checks this.
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            AsExpression, FromSqlRow,
        )]
        #[diesel(sql_type = Text)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates a caller-chosen id.
            ///
            /// # Errors
            /// [`Error::InvalidInput`](crate::Error::InvalidInput) if the id is empty, longer than 64
            /// characters, contains control characters or surrounding whitespace.
            pub fn new(id: impl Into<String>) -> Result<Self> {
                let id = id.into();
                validate_text($field, &id, MAX_ID_LEN)?;
                Ok(Self(id))
            }

            /// A new unique id (time-ordered prefix, random suffix).
            pub fn generate() -> Self {
                Self(generate($prefix))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(id: String) -> Result<Self> {
                Self::new(id)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;
            fn try_from(id: &str) -> Result<Self> {
                Self::new(id)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl<DB> ToSql<Text, DB> for $name
        where
            DB: Backend,
            str: ToSql<Text, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                <str as ToSql<Text, DB>>::to_sql(self.0.as_str(), out)
            }
        }

        impl<DB> FromSql<Text, DB> for $name
        where
            DB: Backend,
            String: FromSql<Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                String::from_sql(bytes).map(Self)
            }
        }
    };
}

string_id!(
    /// Public id of an experiment.
    ExperimentId,
    "experiment id",
    "exp"
);
string_id!(
    /// Public id of a simulation (one run).
    SimulationId,
    "simulation id",
    "sim"
);

/// Index of an agent within its simulation (`0..n`). Negative indexes are
/// rejected with [`Error::InvalidInput`](crate::Error::InvalidInput) wherever they are used.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    AsExpression,
    FromSqlRow,
)]
#[diesel(sql_type = Integer)]
#[serde(transparent)]
pub struct AgentIndex(pub i32);

impl AgentIndex {
    /// The index as a number.
    pub fn get(self) -> i32 {
        self.0
    }

    pub(crate) fn checked(self) -> Result<i32> {
        if self.0 == OUT_OF_RANGE {
            Err(Error::invalid(
                "agent index",
                format!("above the largest index, {}", i32::MAX),
            ))
        } else if self.0 < 0 {
            Err(Error::invalid(
                "agent index",
                format!("{} is negative", self.0),
            ))
        } else {
            Ok(self.0)
        }
    }
}

/// What an unsigned index above `i32::MAX` converts to: refused (with its
/// own message) by every call that takes an agent.
const OUT_OF_RANGE: i32 = i32::MIN;

impl From<i32> for AgentIndex {
    fn from(i: i32) -> Self {
        AgentIndex(i)
    }
}

/// Engines index agents by `u32`, `u64` or `usize`: these convert, and an
/// index above `i32::MAX` is refused by the call that receives it
/// ([`Error::InvalidInput`](crate::Error::InvalidInput)), never wrapped.
macro_rules! unsigned_agent_index {
    ($($t:ty),*) => {$(
        impl From<$t> for AgentIndex {
            fn from(i: $t) -> Self {
                AgentIndex(i32::try_from(i).unwrap_or(OUT_OF_RANGE))
            }
        }
    )*};
}
unsigned_agent_index!(u8, u16, u32, u64, usize);

impl fmt::Display for AgentIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<DB> ToSql<Integer, DB> for AgentIndex
where
    DB: Backend,
    i32: ToSql<Integer, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        <i32 as ToSql<Integer, DB>>::to_sql(&self.0, out)
    }
}

impl<DB> FromSql<Integer, DB> for AgentIndex
where
    DB: Backend,
    i32: FromSql<Integer, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        i32::from_sql(bytes).map(AgentIndex)
    }
}
