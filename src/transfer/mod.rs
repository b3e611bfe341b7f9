//! Moving simulations between databases: a lossless JSON Lines export
//! ([`jsonl`] holds the format), an all-or-nothing import, and CSV for
//! pandas. Public ids are kept; the compact `sim_key`s are reassigned by the
//! target.

mod csv;
mod export;
mod import;
mod jsonl;
#[cfg(feature = "parquet")]
mod parquet;
mod validate;

use std::path::Path;

use serde::{Deserialize, Serialize};

#[cfg(feature = "parquet")]
pub use self::parquet::{ParquetCompression, ParquetExport, ParquetOptions};
pub use jsonl::{JSONL_FORMAT, JSONL_VERSION};
pub(crate) use validate::validate_reader;

use crate::error::Error;
use crate::ids::SimulationId;

/// What to do when an imported simulation's id already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum OnConflict {
    /// Refuse with [`Error::Duplicate`](crate::Error::Duplicate) (the default).
    #[default]
    Error,
    /// Leave the existing simulation and import nothing.
    Skip,
    /// Delete the existing simulation, then import.
    Replace,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImportOutcome {
    /// The simulation was imported with this many lines.
    Imported {
        /// Its id.
        simulation: SimulationId,
        /// Data lines read.
        lines: u64,
    },
    /// It existed and [`OnConflict::Skip`] left it alone.
    Skipped {
        /// Its id.
        simulation: SimulationId,
    },
}

/// Maps an I/O error on `path` to [`Error::Io`](crate::Error::Io).
pub(crate) fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}
