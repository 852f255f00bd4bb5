//! `reload`: the generation now running and what changed.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reloaded {
    pub generation: u64,
    /// What changed, a line each, as operators read it.
    pub changes: Vec<String>,
}

impl Reloaded {
    pub fn text(&self) -> String {
        let mut o = format!("reloaded: generation {}\n", self.generation);
        for c in &self.changes {
            o.push_str(&format!("  {c}\n"));
        }
        if self.changes.is_empty() {
            o.push_str("  nothing changed\n");
        }
        o
    }
}
