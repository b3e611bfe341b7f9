//! Numeric metrics and their interned names.

use diesel::prelude::*;

use crate::error::{Error, Result};
use crate::models::{AgentMetric, StepMetric};
use crate::schema::{metric_names, step_metrics};

pub(crate) trait MetricStore {
    /// The id of a metric name, if it was ever recorded.
    fn metric_lookup(&mut self, name: &str) -> Result<Option<i32>>;
    fn metric_id(&mut self, name: &str) -> Result<i32>;
    fn insert_step_metric(&mut self, row: &StepMetric) -> Result<()>;
    fn insert_agent_metric(&mut self, row: &AgentMetric) -> Result<()>;
}

for_each_backend! {
    impl MetricStore {
        fn metric_lookup(&mut self, name: &str) -> Result<Option<i32>> {
            Ok(metric_names::table
                .filter(metric_names::name.eq(name))
                .select(metric_names::metric_id)
                .first(self)
                .optional()?)
        }

        fn metric_id(&mut self, name: &str) -> Result<i32> {
            let find = |c: &mut Self| {
                metric_names::table
                    .filter(metric_names::name.eq(name))
                    .select(metric_names::metric_id)
                    .first::<i32>(c)
                    .optional()
            };
            if let Some(id) = find(self)? {
                return Ok(id);
            }
            diesel::insert_into(metric_names::table)
                .values(metric_names::name.eq(name))
                .on_conflict(metric_names::name)
                .do_nothing()
                .execute(self)?;
            find(self)?.ok_or_else(|| Error::not_found("metric", name))
        }

        fn insert_step_metric(&mut self, row: &StepMetric) -> Result<()> {
            diesel::insert_into(step_metrics::table)
                .values(row.clone())
                .execute(self)
                .map_err(|e| Error::from_write(e, "step metric", format!("step {}", row.step), None))?;
            Ok(())
        }

        fn insert_agent_metric(&mut self, row: &AgentMetric) -> Result<()> {
            let rows = [row.clone()];
            super::metric_chunks::write_metrics(self, row.sim_key, &rows, None).map(|_| ())
        }
    }
}
