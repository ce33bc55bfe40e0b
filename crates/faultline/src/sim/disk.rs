//! A node's simulated disk: buffered writes, and what `fsync` made durable. A crash loses
//! the buffered writes; a restart finds only the durable ones. Ordered by key (`BTreeMap`)
//! so that anything that walks it does so in a fixed order.

use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub struct Disk {
    durable: BTreeMap<String, Vec<u8>>,
    buffered: BTreeMap<String, Vec<u8>>,
    writes: u64,
    syncs: u64,
    /// Writes acknowledged to the protocol but dropped by a `lie` fault.
    lost_to_lies: u64,
}

impl Disk {
    /// Buffers a write.
    pub fn write(&mut self, key: &str, value: Vec<u8>) {
        self.writes += 1;
        self.buffered.insert(key.to_owned(), value);
    }

    /// Makes the buffered writes durable.
    pub fn sync(&mut self) {
        self.syncs += 1;
        let buffered = std::mem::take(&mut self.buffered);
        self.durable.extend(buffered);
    }

    /// Drops the buffered writes while the caller believes them synced (a lying disk or
    /// WAL). Returns how many were dropped.
    pub fn drop_buffered(&mut self) -> usize {
        let n = self.buffered.len();
        self.lost_to_lies += n as u64;
        self.buffered.clear();
        n
    }

    /// What a crash does to the disk: the buffered writes are gone.
    pub fn crash(&mut self) {
        self.buffered.clear();
    }

    /// The latest write under `key`, buffered or durable.
    pub fn read(&self, key: &str) -> Option<&[u8]> {
        self.buffered.get(key).or_else(|| self.durable.get(key)).map(Vec::as_slice)
    }

    /// The durable value under `key`: what survives a crash.
    pub fn read_durable(&self, key: &str) -> Option<&[u8]> {
        self.durable.get(key).map(Vec::as_slice)
    }

    /// Durable keys, in order.
    pub fn durable_keys(&self) -> impl Iterator<Item = &str> {
        self.durable.keys().map(String::as_str)
    }

    pub fn writes(&self) -> u64 {
        self.writes
    }

    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    pub fn lost_to_lies(&self) -> u64 {
        self.lost_to_lies
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_loses_only_unsynced_writes() {
        let mut d = Disk::default();
        d.write("a", vec![1]);
        d.sync();
        d.write("b", vec![2]);
        assert_eq!(d.read("b"), Some(&[2][..]));
        d.crash();
        assert_eq!((d.read("a"), d.read("b")), (Some(&[1][..]), None));
    }

    #[test]
    fn a_lie_drops_what_was_to_be_synced() {
        let mut d = Disk::default();
        d.write("a", vec![1]);
        assert_eq!(d.drop_buffered(), 1);
        assert_eq!((d.read("a"), d.lost_to_lies()), (None, 1));
    }
}
