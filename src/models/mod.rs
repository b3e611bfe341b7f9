//! Typed rows of every simdb table.
//!
//! `Foo` is what a query returns (`Queryable + Selectable`); `NewFoo` is what
//! the service inserts (`Insertable`), built from a constructor that takes
//! the required fields, with builder methods for the optional ones.

mod agent;
mod agent_memory;
mod agent_state;
mod agent_state_chunk;
mod event;
mod experiment;
mod metric;
mod simulation;
mod simulation_step;

pub use agent::{Agent, NewAgent};
pub use agent_memory::{AgentMemory, MemorySummary, NewAgentMemory};
pub use agent_state::AgentState;
pub use agent_state_chunk::AgentStateChunk;
pub use event::Event;
pub(crate) use event::NewEvent;
pub use experiment::{Experiment, NewExperiment};
pub use metric::{AgentMetric, AgentMetricChunk, MetricName, StepMetric};
pub use simulation::{NewSimulation, Simulation, SimulationStatus};
pub use simulation_step::SimulationStep;
