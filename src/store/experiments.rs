//! Statements on experiments.

use diesel::prelude::*;

use super::prelude::*;
use crate::error::{Error, Result};
use crate::ids::ExperimentId;
use crate::models::{Experiment, NewExperiment};
use crate::schema::experiments;

pub(crate) trait ExperimentStore {
    fn find_experiment(&mut self, id: &ExperimentId) -> Result<Experiment>;
    fn experiment_named(&mut self, name: &str) -> Result<Experiment>;
    fn list_experiments(&mut self) -> Result<Vec<Experiment>>;
    fn insert_experiment(&mut self, new: &NewExperiment) -> Result<Experiment>;
}

for_each_backend! {
    impl ExperimentStore {
        fn find_experiment(&mut self, id: &ExperimentId) -> Result<Experiment> {
            experiments::table
                .find(id)
                .select(Experiment::as_select())
                .first(self)
                .optional()?
                .ok_or_else(|| Error::not_found("experiment", id))
        }

        fn experiment_named(&mut self, name: &str) -> Result<Experiment> {
            experiments::table
                .filter(experiments::name.eq(name))
                .select(Experiment::as_select())
                .first(self)
                .optional()?
                .ok_or_else(|| Error::not_found("experiment named", name))
        }

        fn list_experiments(&mut self) -> Result<Vec<Experiment>> {
            Ok(experiments::table
                .select(Experiment::as_select())
                .order((experiments::created_at, experiments::id))
                .load(self)?)
        }

        fn insert_experiment(&mut self, new: &NewExperiment) -> Result<Experiment> {
            self.write(|c| {
                let taken = experiments::table
                    .filter(experiments::id.eq(&new.id).or(experiments::name.eq(&new.name)))
                    .select((experiments::id, experiments::name))
                    .first::<(ExperimentId, String)>(c)
                    .optional()?;
                if let Some((id, name)) = taken {
                    return Err(if id == new.id {
                        Error::Duplicate { entity: "experiment", id: id.to_string() }
                    } else {
                        Error::Duplicate { entity: "experiment named", id: name }
                    });
                }
                diesel::insert_into(experiments::table)
                    .values(new.clone())
                    .execute(c)
                    .map_err(|e| Error::from_write(e, "experiment", &new.id, None))?;
                c.find_experiment(&new.id)
            })
        }
    }
}
