//! Metric names interned per recorder: a local id per name on the
//! recording side, the database id once a committed batch learned it.

/// Metric names by batch-local id, and their database ids once known.
#[derive(Debug, Default, Clone)]
pub(crate) struct MetricCache {
    pub(crate) names: Vec<String>,
    pub(crate) ids: Vec<Option<i32>>,
}

impl MetricCache {
    /// Records the name of a recorder-local id.
    pub(crate) fn register(&mut self, id: u32, name: &str) {
        let i = id as usize;
        if self.names.len() <= i {
            self.names.resize(i + 1, String::new());
            self.ids.resize(i + 1, None);
        }
        self.names[i] = name.to_string();
    }

    /// This cache with the ids of `interned` too (itself when there are
    /// none: no copy on the usual path).
    pub(crate) fn with_learned(
        &self,
        interned: &[(usize, i32)],
    ) -> std::borrow::Cow<'_, MetricCache> {
        if interned.is_empty() {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut cache = self.clone();
        cache.learned(interned.to_vec());
        std::borrow::Cow::Owned(cache)
    }

    /// Keeps database ids that a committed batch interned.
    pub(crate) fn learned(&mut self, ids: Vec<(usize, i32)>) {
        for (i, id) in ids {
            if let Some(slot) = self.ids.get_mut(i) {
                *slot = Some(id);
            }
        }
    }

    /// The local id of `name`, registering it if new.
    pub(crate) fn local(&mut self, name: &str) -> u32 {
        match self.names.iter().position(|n| n == name) {
            Some(i) => i as u32,
            None => {
                self.names.push(name.to_string());
                self.ids.push(None);
                (self.names.len() - 1) as u32
            }
        }
    }
}
