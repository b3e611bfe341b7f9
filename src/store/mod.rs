//! The SQL of the service, one file per entity. Each file declares a trait
//! of the statements it owns and implements it once per backend connection
//! with [`for_each_backend!`]: the schema is shared, so the same Diesel DSL
//! is valid on both.

use std::ops::{Bound, RangeBounds};

/// Implements a trait for every enabled backend's connection type with the
/// same body (Diesel's query types are per backend, so one generic impl
/// would need a bound for every statement).
macro_rules! for_each_backend {
    (impl $trait:ident { $($body:tt)* }) => {
        #[cfg(feature = "sqlite")]
        impl $trait for diesel::sqlite::SqliteConnection { $($body)* }
        #[cfg(feature = "postgres")]
        impl $trait for diesel::pg::PgConnection { $($body)* }
    };
}
pub(crate) use for_each_backend;

/// SQLite: multi-row INSERTs of `$n` rows, then the remainder in INSERTs
/// of 16, 4 and 1 rows. Fixed-size arrays give Diesel a static query id,
/// so each of these few statements is prepared once per connection and
/// reused; a slice of rows would be rebuilt as SQL text, looked up by it
/// and, at a new length, prepared again on every call.
#[cfg(feature = "sqlite")]
macro_rules! sqlite_insert_rows {
    ($conn:expr, $table:expr, $rows:expr, $row:ty, $n:expr) => {{
        let mut rest: &[$row] = $rows;
        macro_rules! insert_by {
            ($size:expr) => {
                while rest.len() >= $size {
                    let (part, tail) = rest.split_at($size);
                    if let Ok(array) = <&[$row; $size]>::try_from(part) {
                        diesel::insert_into($table).values(array).execute($conn)?;
                    }
                    rest = tail;
                }
            };
        }
        insert_by!($n);
        insert_by!(16);
        insert_by!(4);
        insert_by!(1);
        Ok(())
    }};
}
#[cfg(feature = "sqlite")]
pub(crate) use sqlite_insert_rows;

mod agent_keys;
mod agents;
pub(crate) mod batch_statement;
mod clock;
mod deletion;
mod events;
mod experiments;
mod filter;
mod keys;
pub(crate) mod known_chunks;
pub(crate) mod known_rollups;
mod leases;
mod memories;
pub(crate) mod metric_chunks;
mod metrics;
mod pages;
mod recovery;
pub(crate) mod rollups;
mod row_lock;
mod simulations;
pub(crate) mod state_chunks;
mod states;
mod transaction;

pub(crate) use events::event;
pub use filter::SimulationFilter;
pub(crate) use simulations::FullSimulation;
pub(crate) use state_chunks::write_states;

/// Every store trait, for `use crate::store::prelude::*`.
pub(crate) mod prelude {
    pub(crate) use super::agent_keys::{AgentKeyStore, Dialect, StepSpan, AGENT_CHUNK};
    pub(crate) use super::agents::AgentStore;
    pub(crate) use super::deletion::RunDeletion;
    pub(crate) use super::events::EventStore;
    pub(crate) use super::experiments::ExperimentStore;
    pub(crate) use super::leases::LeaseStore;
    pub(crate) use super::memories::MemoryStore;
    pub(crate) use super::metric_chunks::MetricChunkStore;
    pub(crate) use super::metrics::MetricStore;
    pub(crate) use super::pages::PageStore;
    pub(crate) use super::recovery::RecoveryStore;
    pub(crate) use super::rollups::{
        RollupBuilder, RollupStore, BLOCK_STEPS, NO_KIND, REWARD_FIELD,
    };
    pub(crate) use super::row_lock::RowLock;
    pub(crate) use super::simulations::SimulationStore;
    pub(crate) use super::state_chunks::{StateChunkStore, StateInput};
    pub(crate) use super::states::StateStore;
    pub(crate) use super::transaction::{DeferCheckpoints, Transactional};
    pub(crate) use super::Store;
}
use prelude::*;

/// All of simdb's statements on one connection.
pub(crate) trait Store:
    Transactional
    + ExperimentStore
    + SimulationStore
    + AgentStore
    + AgentKeyStore
    + EventStore
    + StateStore
    + StateChunkStore
    + MetricChunkStore
    + MetricStore
    + MemoryStore
    + RecoveryStore
    + RollupStore
    + LeaseStore
    + PageStore
    + RowLock
{
}

impl<C> Store for C where
    C: Transactional
        + ExperimentStore
        + SimulationStore
        + AgentStore
        + AgentKeyStore
        + EventStore
        + StateStore
        + StateChunkStore
        + MetricChunkStore
        + MetricStore
        + MemoryStore
        + RecoveryStore
        + RollupStore
        + LeaseStore
        + PageStore
        + RowLock
{
}

/// Inclusive `(first, last)` steps of a range.
pub(crate) fn step_bounds(range: &impl RangeBounds<i64>) -> (i64, i64) {
    let lo = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => i64::MIN,
    };
    let hi = match range.end_bound() {
        Bound::Included(&e) => e,
        Bound::Excluded(&e) => e.saturating_sub(1),
        Bound::Unbounded => i64::MAX,
    };
    (lo, hi)
}
