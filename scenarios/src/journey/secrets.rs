//! Secrets by reference: `env:NAME` or `file:PATH`, never inline. Values are wrapped so they never
//! print, and the player masks them out of every excerpt.

use std::collections::BTreeMap;

pub use conf::{Secret, SecretRef};

/// A journey's resolved secrets, by name.
#[derive(Debug, Clone, Default)]
pub struct Secrets(pub BTreeMap<String, Secret>);

impl Secrets {
    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.0.get(name)
    }

    /// Every non-trivial value, for masking.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(Secret::expose).filter(|v| v.len() >= 3)
    }
}
