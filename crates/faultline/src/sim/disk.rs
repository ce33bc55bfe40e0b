//! A node's simulated disk: buffered writes, and what `fsync` made durable. A crash loses
//! the buffered writes; a restart finds only the durable ones. A lying disk (the `lie`
//! fault) acknowledges an fsync without making anything durable: those writes stay
//! readable by the node, which believes them safe, and vanish at its next crash.
//!
//! Keys live in a `BTreeMap` (a fixed order for anything that walks them) that points into
//! a slot arena, and the slots written since the last fsync are listed by index: rewriting
//! an existing key and syncing it allocate nothing, and an fsync touches only what changed.

use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
struct Slot {
    durable: Option<Vec<u8>>,
    buffered: Option<Vec<u8>>,
    /// Acknowledged by a lying fsync: readable, never durable.
    phantom: Option<Vec<u8>>,
    dirty: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Disk {
    index: BTreeMap<String, usize>,
    slots: Vec<Slot>,
    /// Slots with a buffered write, in the order they were first written.
    dirty: Vec<usize>,
    writes: u64,
    syncs: u64,
    lost_to_lies: u64,
}

impl Disk {
    /// Buffers a write.
    pub fn write(&mut self, key: &str, value: Vec<u8>) {
        self.writes += 1;
        let i = match self.index.get(key) {
            Some(&i) => i,
            None => {
                self.slots.push(Slot::default());
                self.index.insert(key.to_owned(), self.slots.len() - 1);
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[i];
        slot.buffered = Some(value);
        slot.phantom = None;
        if !slot.dirty {
            slot.dirty = true;
            self.dirty.push(i);
        }
    }

    /// Makes the buffered writes durable.
    pub fn sync(&mut self) {
        self.syncs += 1;
        for i in self.dirty.drain(..) {
            let slot = &mut self.slots[i];
            slot.dirty = false;
            if let Some(v) = slot.buffered.take() {
                slot.durable = Some(v);
            }
        }
    }

    /// A lying fsync: the buffered writes are acknowledged but never made durable. The
    /// node still reads them back; a crash loses them. Returns how many there were.
    pub fn sync_lying(&mut self) -> usize {
        let n = self.dirty.len();
        self.lost_to_lies += n as u64;
        for i in self.dirty.drain(..) {
            let slot = &mut self.slots[i];
            slot.dirty = false;
            slot.phantom = slot.buffered.take();
        }
        n
    }

    /// What a crash does to the disk: everything not durable is gone.
    pub fn crash(&mut self) {
        for slot in &mut self.slots {
            slot.buffered = None;
            slot.phantom = None;
            slot.dirty = false;
        }
        self.dirty.clear();
    }

    /// The latest write under `key`, as the node sees it: buffered, acknowledged by a
    /// lying fsync, or durable.
    pub fn read(&self, key: &str) -> Option<&[u8]> {
        let slot = &self.slots[*self.index.get(key)?];
        slot.buffered.as_ref().or(slot.phantom.as_ref()).or(slot.durable.as_ref()).map(Vec::as_slice)
    }

    /// The durable value under `key`: what survives a crash.
    pub fn read_durable(&self, key: &str) -> Option<&[u8]> {
        self.slots[*self.index.get(key)?].durable.as_deref()
    }

    /// Keys with a durable value, in order.
    pub fn durable_keys(&self) -> impl Iterator<Item = &str> {
        self.index.iter().filter(|(_, i)| self.slots[**i].durable.is_some()).map(|(k, _)| k.as_str())
    }

    pub fn writes(&self) -> u64 {
        self.writes
    }

    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// Writes acknowledged by a lying fsync and never made durable.
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
        d.write("a", vec![3]);
        assert_eq!((d.read("a"), d.read("b")), (Some(&[3][..]), Some(&[2][..])));
        d.crash();
        assert_eq!((d.read("a"), d.read("b")), (Some(&[1][..]), None));
        assert_eq!(d.durable_keys().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn a_lie_acks_what_it_never_makes_durable() {
        let mut d = Disk::default();
        d.write("a", vec![1]);
        d.sync();
        d.write("a", vec![2]);
        assert_eq!(d.sync_lying(), 1);
        // The node reads back what it believes it synced; the disk holds the old value.
        assert_eq!((d.read("a"), d.read_durable("a"), d.lost_to_lies()), (Some(&[2][..]), Some(&[1][..]), 1));
        d.crash();
        assert_eq!(d.read("a"), Some(&[1][..]));
        // An honest fsync later does not resurrect the lost write.
        d.sync();
        assert_eq!(d.read_durable("a"), Some(&[1][..]));
    }
}
