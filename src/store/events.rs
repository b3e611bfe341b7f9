//! The audit trail.

use chrono::Utc;
use diesel::prelude::*;

use super::prelude::*;
use crate::error::Result;
use crate::models::{Event, NewEvent, SimulationStatus};
use crate::schema::events;
use crate::sql_types::TimeParam;

pub(crate) trait EventStore {
    fn events(&mut self, sim_key: i32) -> Result<Vec<Event>>;
    /// Inserts an event as given (imports keep their times).
    fn insert_event(&mut self, event: &NewEvent) -> Result<()>;
    /// Inserts an event that happens now, stamped by the database's clock
    /// (as transitions, heartbeats and staleness are).
    fn record_event(&mut self, event: &NewEvent) -> Result<()>;
}

for_each_backend! {
    impl EventStore {
        fn events(&mut self, sim_key: i32) -> Result<Vec<Event>> {
            Ok(events::table
                .filter(events::sim_key.eq(sim_key))
                .select(Event::as_select())
                .order(events::event_id)
                .load(self)?)
        }

        fn insert_event(&mut self, event: &NewEvent) -> Result<()> {
            diesel::insert_into(events::table).values(event.clone()).execute(self)?;
            Ok(())
        }

        fn record_event(&mut self, event: &NewEvent) -> Result<()> {
            let mut event = event.clone();
            event.occurred_at = TimeParam(self.database_now()?);
            diesel::insert_into(events::table).values(event).execute(self)?;
            Ok(())
        }
    }
}

/// A new event row of a simulation, stamped now.
pub(crate) fn event(
    sim_key: i32,
    kind: &str,
    from: Option<SimulationStatus>,
    to: Option<SimulationStatus>,
    message: Option<String>,
) -> NewEvent {
    NewEvent {
        sim_key,
        occurred_at: TimeParam(Utc::now()),
        kind: kind.to_string(),
        from_status: from,
        to_status: to,
        message,
        data: None,
    }
}
