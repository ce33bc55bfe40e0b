//! Raft's messages, with the sizes a compact binary encoding would give them. Sizes matter:
//! an `omit-large` fault drops AppendEntries that carry entries while empty heartbeats get
//! through, which is how the chapter's PaySetu follower got stuck behind a healthy-looking
//! leader. Every message is data plane; none is encoded, so `flip` leaves them alone.

use std::fmt;

use rand::Rng;
use sha2::{Digest, Sha256};

use super::{Command, LogEntry, Op};
use crate::protocol::{Message, NodeId};
use crate::rng::SimRng;

/// SHA-256 over a key and a value, as the writing client computes it.
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct Checksum(pub [u8; 32]);

impl Checksum {
    /// The digest of `key` (u32 LE) then `value` (u64 LE).
    pub fn of(key: u32, value: u64) -> Checksum {
        let mut h = Sha256::new();
        h.update(key.to_le_bytes());
        h.update(value.to_le_bytes());
        Checksum(h.finalize().into())
    }
}

impl fmt::Debug for Checksum {
    /// Four bytes in hex, enough to tell two apart in a trace.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

/// A server's answer to a client request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Done. A `Get` carries the value read (`None`: never written) and its checksum.
    Ok { value: Option<u64>, checksum: Option<Checksum> },
    /// Not the leader; `hint` is the leader this server knows of, if any.
    NotLeader { hint: Option<NodeId> },
    /// Definitely not done (the resource rejected the leader's fencing token).
    Fail,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RaftMsg {
    /// A vote request; with `pre_vote`, a PreVote for `term` that the sender has not
    /// entered yet.
    RequestVote {
        term: u64,
        last_index: u64,
        last_term: u64,
        pre_vote: bool,
    },
    /// An answer to `RequestVote`. A granted PreVote echoes the requested term.
    Vote {
        term: u64,
        granted: bool,
        pre_vote: bool,
    },
    /// Entries after `prev_index`, or none (a heartbeat). `round` is the leader's heartbeat
    /// round when it sent this, echoed in the reply to confirm leadership (ReadIndex,
    /// leases).
    AppendEntries {
        term: u64,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<LogEntry>,
        commit: u64,
        round: u64,
    },
    /// On success, the follower's log matches the leader's up to `match_index`. On failure,
    /// `rejected` is the `prev_index` refused and `hint` the index the leader may jump back
    /// to. `last_index` is the follower's log length either way.
    AppendReply {
        term: u64,
        success: bool,
        match_index: u64,
        rejected: u64,
        hint: u64,
        last_index: u64,
        round: u64,
    },
    ClientRequest {
        seq: u64,
        op: Op,
        checksum: Option<Checksum>,
    },
    ClientReply {
        seq: u64,
        reply: Reply,
    },
    /// A leader asks the resource to accept `(client, seq)` under `token` (its term).
    Fence {
        token: u64,
        client: u32,
        seq: u64,
    },
    FenceAck {
        token: u64,
        client: u32,
        seq: u64,
        accepted: bool,
    },
}

/// Tag, term, and the framing a transport adds.
const HEADER: usize = 32;
/// Term, index, command tag and length of a log entry.
const ENTRY_HEADER: usize = 24;

fn op_size(op: &Op) -> usize {
    match op {
        Op::Put { .. } => 12,
        Op::Get { .. } => 4,
    }
}

fn checksum_size(c: &Option<Checksum>) -> usize {
    c.map_or(0, |_| 32)
}

fn entry_size(e: &LogEntry) -> usize {
    let cmd = match &e.cmd {
        Command::Noop => 0,
        Command::Op { op, .. } => 12 + op_size(op),
    };
    ENTRY_HEADER + cmd + checksum_size(&e.checksum)
}

impl Message for RaftMsg {
    /// An empty AppendEntries is 64 bytes; one with a single `Put` is 112 (144 with a
    /// checksum).
    fn wire_size(&self) -> usize {
        HEADER
            + match self {
                RaftMsg::RequestVote { .. } => 17,
                RaftMsg::Vote { .. } => 2,
                RaftMsg::AppendEntries { entries, .. } => 32 + entries.iter().map(entry_size).sum::<usize>(),
                RaftMsg::AppendReply { .. } => 41,
                RaftMsg::ClientRequest { op, checksum, .. } => 8 + op_size(op) + checksum_size(checksum),
                RaftMsg::ClientReply { reply, .. } => {
                    8 + match reply {
                        Reply::Ok { checksum, .. } => 9 + checksum_size(checksum),
                        Reply::NotLeader { .. } => 5,
                        Reply::Fail => 1,
                    }
                }
                RaftMsg::Fence { .. } => 20,
                RaftMsg::FenceAck { .. } => 21,
            }
    }

    /// BharatBazaar's faulty DRAM: a value read back to a client comes out 1 to 4 too high.
    /// The checksum is left as it was, so a client that checks it notices. Nothing else a
    /// server sends can be changed this way.
    fn tamper(&mut self, rng: &mut SimRng) -> bool {
        match self {
            RaftMsg::ClientReply { reply: Reply::Ok { value: Some(v), .. }, .. } => {
                *v = v.wrapping_add(1 + rng.next_u64() % 4);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Stream, stream};

    #[test]
    fn heartbeats_are_smaller_than_appends_with_entries() {
        let append = |entries: Vec<LogEntry>| RaftMsg::AppendEntries {
            term: 1,
            prev_index: 0,
            prev_term: 0,
            entries,
            commit: 0,
            round: 0,
        };
        let put = LogEntry {
            term: 1,
            cmd: Command::Op { client: 0, seq: 1, op: Op::Put { key: 1, value: 2 } },
            checksum: None,
        };
        assert_eq!(append(vec![]).wire_size(), 64);
        assert_eq!(append(vec![put.clone()]).wire_size(), 112);
        assert_eq!(append(vec![put.clone(), put]).wire_size(), 160);
    }

    #[test]
    fn tamper_changes_only_read_values_and_leaves_the_checksum() {
        let mut rng = stream(1, Stream::Setup(0));
        let checksum = Some(Checksum::of(1, 10));
        let mut read = RaftMsg::ClientReply { seq: 1, reply: Reply::Ok { value: Some(10), checksum } };
        assert!(read.tamper(&mut rng));
        let RaftMsg::ClientReply { reply: Reply::Ok { value: Some(v), checksum: c }, .. } = read else {
            unreachable!()
        };
        assert!((11..=14).contains(&v));
        assert_eq!(c, checksum);
        let mut write = RaftMsg::ClientReply { seq: 1, reply: Reply::Ok { value: None, checksum: None } };
        assert!(!write.tamper(&mut rng));
        let mut vote = RaftMsg::Vote { term: 1, granted: true, pre_vote: false };
        assert!(!vote.tamper(&mut rng));
    }
}
