//! What a Raft server keeps on its disk, and how to read it back.
//!
//! Three kinds of key, all little-endian:
//! - `meta`: `term` (u64), `voted_for` (u32, `u32::MAX` for nobody), `led` (u64: the term
//!   this server was leader of when it wrote this, 0 if none; so a restarted leader can
//!   report that it stepped down). 20 bytes.
//! - `log/len`: the number of entries in the log (u64). Entries beyond it are garbage left
//!   by a truncation and are ignored.
//! - `log/<index>`, for `index` in `1..=len`: one entry: `term` (u64), a tag (u8: 0 no-op,
//!   1 put, 2 get), then for a put or get `client` (u32), `seq` (u64), `key` (u32), and for
//!   a put `value` (u64); then a flag (u8: 1 if a checksum follows) and the 32-byte
//!   checksum.
//!
//! Appending an entry writes its key and `log/len`; a truncation rewrites `log/len` only.
//! A server fsyncs them (and `meta` when it changed) before it answers the message that
//! caused them. An fsync makes every buffered write durable at once, so the durable keys
//! are always a state the server once had; only a lying disk can leave `log/len` pointing
//! past an entry that never became durable, and decoding stops at the first missing entry.

use super::{Command, LogEntry, Op};
use crate::protocols::bytes::Reader;
use crate::protocols::raft::wire::Checksum;
use crate::sim::disk::Disk;

pub const META_KEY: &str = "meta";
pub const LOG_LEN_KEY: &str = "log/len";

/// The key of log entry `index` (1-based).
pub fn entry_key(index: u64) -> String {
    format!("log/{index}")
}

/// A server's term, vote and leadership, as persisted under `meta`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub term: u64,
    pub voted_for: Option<u32>,
    /// The term this server was leader of, or 0.
    pub led: u64,
}

impl Meta {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20);
        out.extend_from_slice(&self.term.to_le_bytes());
        out.extend_from_slice(&self.voted_for.unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&self.led.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Meta> {
        let mut r = Reader(bytes);
        let term = r.u64()?;
        let vote = r.u32()?;
        let led = r.u64()?;
        r.is_empty().then_some(Meta { term, voted_for: (vote != u32::MAX).then_some(vote), led })
    }
}

pub fn encode_len(len: u64) -> Vec<u8> {
    len.to_le_bytes().to_vec()
}

pub fn decode_len(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

pub fn encode_entry(e: &LogEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 1 + 24 + 1 + 32);
    out.extend_from_slice(&e.term.to_le_bytes());
    match &e.cmd {
        Command::Noop => out.push(0),
        Command::Op { client, seq, op } => {
            out.push(match op {
                Op::Put { .. } => 1,
                Op::Get { .. } => 2,
            });
            out.extend_from_slice(&client.to_le_bytes());
            out.extend_from_slice(&seq.to_le_bytes());
            out.extend_from_slice(&op.key().to_le_bytes());
            if let Op::Put { value, .. } = op {
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
    }
    match &e.checksum {
        None => out.push(0),
        Some(c) => {
            out.push(1);
            out.extend_from_slice(&c.0);
        }
    }
    out
}

pub fn decode_entry(bytes: &[u8]) -> Option<LogEntry> {
    let mut r = Reader(bytes);
    let term = r.u64()?;
    let cmd = match r.u8()? {
        0 => Command::Noop,
        tag @ (1 | 2) => {
            let (client, seq, key) = (r.u32()?, r.u64()?, r.u32()?);
            let op = if tag == 1 { Op::Put { key, value: r.u64()? } } else { Op::Get { key } };
            Command::Op { client, seq, op }
        }
        _ => return None,
    };
    let checksum = match r.u8()? {
        0 => None,
        1 => Some(Checksum(r.take(32)?.try_into().ok()?)),
        _ => return None,
    };
    r.is_empty().then_some(LogEntry { term, cmd, checksum })
}

/// Reads a log through `read` (the node's view, or the durable one).
pub fn load_log<B: AsRef<[u8]>>(mut read: impl FnMut(&str) -> Option<B>) -> Vec<LogEntry> {
    let len = read(LOG_LEN_KEY).and_then(|b| decode_len(b.as_ref())).unwrap_or(0);
    let mut log = Vec::new();
    for i in 1..=len {
        match read(&entry_key(i)).and_then(|b| decode_entry(b.as_ref())) {
            Some(e) => log.push(e),
            None => break,
        }
    }
    log
}

/// The log a server's disk holds durably: what it would find after a crash.
pub fn durable_log(disk: &Disk) -> Vec<LogEntry> {
    load_log(|k| disk.read_durable(k))
}

fn durable_meta(disk: &Disk) -> Meta {
    disk.read_durable(META_KEY).and_then(Meta::decode).unwrap_or_default()
}

/// The length of the log on disk, as a crash would leave it (without decoding it).
pub fn durable_len(disk: &Disk) -> u64 {
    disk.read_durable(LOG_LEN_KEY).and_then(decode_len).unwrap_or(0)
}

/// The term a server's disk holds durably (0 if none).
pub fn durable_term(disk: &Disk) -> u64 {
    durable_meta(disk).term
}

/// The vote a server's disk holds durably: the server index it voted for in its durable term.
pub fn durable_vote(disk: &Disk) -> Option<u32> {
    durable_meta(disk).voted_for
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_meta_round_trip() {
        let entries = [
            LogEntry { term: 3, cmd: Command::Noop, checksum: None },
            LogEntry {
                term: 4,
                cmd: Command::Op { client: 1, seq: 9, op: Op::Put { key: 2, value: 1_000_009 } },
                checksum: Some(Checksum::of(2, 1_000_009)),
            },
            LogEntry { term: 4, cmd: Command::Op { client: 0, seq: 7, op: Op::Get { key: 3 } }, checksum: None },
        ];
        for e in &entries {
            assert_eq!(decode_entry(&encode_entry(e)).as_ref(), Some(e));
        }
        let meta = Meta { term: 7, voted_for: Some(2), led: 0 };
        assert_eq!(Meta::decode(&meta.encode()), Some(meta));
        let meta = Meta { term: 7, voted_for: None, led: 7 };
        assert_eq!(Meta::decode(&meta.encode()), Some(meta));
    }

    #[test]
    fn durable_log_ignores_entries_past_the_length_and_unsynced_writes() {
        let e = |term| LogEntry { term, cmd: Command::Noop, checksum: None };
        let mut disk = Disk::default();
        for i in 1..=3 {
            disk.write(&entry_key(i), encode_entry(&e(i)));
        }
        disk.write(LOG_LEN_KEY, encode_len(3));
        disk.sync();
        disk.write(LOG_LEN_KEY, encode_len(2)); // a truncation...
        disk.sync();
        disk.write(&entry_key(3), encode_entry(&e(5))); // ...and an append not yet synced
        disk.write(LOG_LEN_KEY, encode_len(3));
        assert_eq!(durable_log(&disk), vec![e(1), e(2)]);
        disk.write(META_KEY, Meta { term: 5, voted_for: Some(1), led: 0 }.encode());
        assert_eq!(durable_term(&disk), 0);
        disk.sync();
        assert_eq!(durable_log(&disk), vec![e(1), e(2), e(5)]);
        assert_eq!((durable_term(&disk), durable_vote(&disk)), (5, Some(1)));
    }
}
