//! Rendered charts shared between viewers: many pages open on one running
//! simulation ask for the same chart each time its watermark moves, and
//! one rendering serves them all.
//!
//! A chart is kept under its simulation's commit watermark and status, so
//! it is reused only while both are unchanged: every step at or below the
//! watermark was complete when it was drawn, exactly as a new drawing would
//! show it. (Rows of steps above the watermark are still in flight and may
//! differ between two drawings; the page redraws when the watermark moves.)
//! Entries live at most [`CHART_TTL`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::models::SimulationStatus;

/// How long a drawing may be reused.
pub(crate) const CHART_TTL: Duration = Duration::from_secs(2);

/// At most this many drawings are kept (expired ones go first).
const CAPACITY: usize = 256;

/// Simulation id, what is drawn (the field and the view's options),
/// buckets, watermark, status.
pub(crate) type ChartKey = (String, String, usize, Option<i64>, SimulationStatus);

/// A drawn chart and its data.
pub(crate) type Drawing = Arc<super::chart::Drawn>;

/// The shared drawings.
#[derive(Default)]
pub(crate) struct ChartCache {
    entries: Mutex<HashMap<ChartKey, (Instant, Drawing)>>,
}

impl ChartCache {
    fn entries(&self) -> MutexGuard<'_, HashMap<ChartKey, (Instant, Drawing)>> {
        // A panic elsewhere cannot leave the map half-written: use it.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The drawing under `key`, if one younger than [`CHART_TTL`] is kept.
    pub(crate) fn get(&self, key: &ChartKey) -> Option<Drawing> {
        self.entries()
            .get(key)
            .filter(|(at, _)| at.elapsed() < CHART_TTL)
            .map(|(_, drawing)| drawing.clone())
    }

    /// Keeps `drawing` under `key`.
    pub(crate) fn put(&self, key: ChartKey, drawing: Drawing) {
        let mut entries = self.entries();
        entries.retain(|_, (at, _)| at.elapsed() < CHART_TTL);
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), drawing));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drawing_is_kept_under_its_watermark_only() {
        let cache = ChartCache::default();
        let key = |w| {
            (
                "sim".to_string(),
                "reward".to_string(),
                200,
                w,
                SimulationStatus::Running,
            )
        };
        let drawn = super::super::chart::Drawn {
            svg: "<svg/>".into(),
            points: 5,
            frame: Default::default(),
            figure: Default::default(),
        };
        cache.put(key(Some(4)), Arc::new(drawn));
        assert_eq!(cache.get(&key(Some(4))).map(|d| d.points), Some(5));
        assert!(cache.get(&key(Some(5))).is_none());
        let done = (
            "sim".to_string(),
            "reward".to_string(),
            200,
            Some(4),
            SimulationStatus::Completed,
        );
        assert!(cache.get(&done).is_none());
    }
}
