//! Reading the little-endian frames the protocols encode their messages and disk records
//! in: every read is checked, and a short buffer is `None`, never a panic.

use std::rc::Rc;

pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
    /// A `u32` length, then that many bytes of UTF-8.
    pub(crate) fn str(&mut self) -> Option<Rc<str>> {
        let len = self.u32()? as usize;
        std::str::from_utf8(self.take(len)?).ok().map(Rc::from)
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
