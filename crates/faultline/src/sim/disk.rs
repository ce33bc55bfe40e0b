//! A node's simulated disk: a key-value store that survives the node's crash. Ordered by
//! key (`BTreeMap`) so that anything that walks it does so in a fixed order.

use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub struct Disk {
    entries: BTreeMap<String, Vec<u8>>,
    writes: u64,
}

impl Disk {
    pub fn write(&mut self, key: &str, value: Vec<u8>) {
        self.writes += 1;
        self.entries.insert(key.to_owned(), value);
    }

    pub fn read(&self, key: &str) -> Option<&[u8]> {
        self.entries.get(key).map(Vec::as_slice)
    }

    /// How many writes the node made over the run.
    pub fn writes(&self) -> u64 {
        self.writes
    }
}
