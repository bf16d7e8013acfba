//! Keyed latest state and snapshots (SPEC §4).
//!
//! An event published with a `key` is the latest state of `(topic, key)` until a later event for
//! the same pair replaces it; a tombstone removes it. A snapshot is the latest state of every pair
//! whose topic matches the subscription, in id order: the "list" of Kubernetes' list-then-watch.

use std::collections::HashMap;
use std::sync::Arc;

use crate::event::Event;
use crate::hub::any_matches;
use crate::topic::{Pattern, Topic};

/// The latest event of every live `(topic, key)`.
#[derive(Debug, Default)]
pub struct KeyedState {
    latest: HashMap<(Topic, Box<str>), Arc<Event>>,
}

impl KeyedState {
    /// Takes `event` into the state if it has a key.
    pub fn apply(&mut self, event: &Arc<Event>) {
        let Some(key) = &event.key else { return };
        let pair = (event.topic.clone(), key.clone());
        if event.tombstone {
            self.latest.remove(&pair);
        } else {
            self.latest.insert(pair, event.clone());
        }
    }

    /// The latest state of every pair whose topic one of `patterns` matches, in id order.
    pub fn snapshot(&self, patterns: &[Pattern]) -> Vec<Arc<Event>> {
        let mut out: Vec<_> = self.latest.values().filter(|e| any_matches(patterns, &e.topic)).cloned().collect();
        out.sort_by_key(|e| e.id);
        out
    }

    /// The number of live pairs.
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    /// Whether no pair has state.
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }
}
