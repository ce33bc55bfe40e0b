//! The chapter's coordinator, and the defences the chapter names for each failure model.
//!
//! One leader, N followers. Each round the leader sends `Append { round, index, follower,
//! data }` to every follower and sets a deadline. A follower persists the append (write and
//! fsync) before it acks it with what it stored. The round closes at the deadline, or
//! earlier once every follower has been counted (the chapter's `asyncio.wait(tasks,
//! timeout=deadline)`); acks that arrive after their round closed are checked, teach the
//! adaptive deadline, and are otherwise discarded. The leader then groups the counted acks
//! by content: the largest group wins (ties go to the group whose first ack arrived first)
//! and the round is agreed when that group reaches the quorum. `tampered_seen` is set when
//! any ack received in the round carries data other than what the leader proposed; the
//! leader can always tell, because it knows what it sent. The next round starts as soon as
//! one closes.
//!
//! With no defence configured this is the chapter's naive coordinator, `failure_modes.py`
//! line for line (its `by_data` grouping included). Each defence answers one failure model;
//! [`Defences`] lists them and [`Coordinator`] names the presets:
//! - **content quorum** (Byzantine): commit only with `2f+1` acks of identical content when
//!   `n = 3f+1` (PBFT, Castro and Liskov 1999), in general the Byzantine quorum
//!   `⌈(n+f+1)/2⌉` of Malkhi and Reiter (1998), and name the outvoted followers;
//! - **checksums** (corruption): a CRC32C over each ack's encoded frame, and a SHA-256
//!   digest of its content that the leader compares with the digest of its proposal;
//! - **signatures** (forgery): HMAC-SHA256 or Ed25519 over each ack with per-node keys, so a
//!   follower cannot speak for another;
//! - **retries with idempotency keys** (omission): appends not yet acked are re-sent every
//!   `retry` within the deadline; a follower applies each `(round, follower)` key once and
//!   re-acks duplicates without applying them again;
//! - **adaptive deadline** (timing): each follower's ack latency is smoothed as TCP smooths
//!   round trips (RFC 6298: `srtt + 4 rttvar`), late acks included, and a round waits for the
//!   quorum-th fastest estimate, clamped between `deadline` and `deadline_max`.
//!
//! Acks are counted by the follower they *claim* to come from (`voter`), one per follower
//! per round, as a coordinator behind a shared bus, proxy or relay must. The network sender
//! is ground truth that only the simulator's accounting reads ([`Ledger`],
//! `RoundResult::corrupt_counted`). Messages encode to a compact binary frame (see
//! [`QuorumMsg`]), so that bit flips act on real bytes.

pub mod check;
mod keys;
pub mod report;
mod wire;
mod workload;

pub use workload::{Quorum, QuorumScenario, RawQuorum, build, config};

use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;

use serde::Serialize;
use sha2::{Digest, Sha256};
use smallvec::SmallVec;

use crate::protocol::{Context, NodeId, Protocol, TimerId};
use crate::protocols::bytes::Reader;
use crate::sim::disk::Disk;
use crate::time::{Span, Time};
use keys::{KeyRing, NodeSigner};
pub use wire::{Ack, Append, Proof, QuorumMsg};

/// The leader is node 0; followers are nodes `1..=followers`, named `f0`, `f1`, ...
pub const LEADER: NodeId = NodeId(0);

/// What the Byzantine tamperer appends to an ack's data, as in the chapter.
pub const TAMPER_SUFFIX: &str = "_TAMPERED";

/// What an equivocating leader appends to the data it sends odd-numbered followers.
pub const EQUIVOCATE_SUFFIX: &str = "_EQUIVOCATED";

/// The disk key under which a follower keeps the last append it applied: `round` (u64 LE),
/// `index` (u64 LE), then the data.
pub const ENTRY_KEY: &str = "entry";

/// The retry interval of the `retrying` preset.
pub const RETRY_DEFAULT: Span = Span::from_millis(50);

/// How many distinct past values a follower remembers for answering stale reads.
const HISTORY_MAX: usize = 1024;

/// How many recent rounds' start times the leader keeps, to time late acks.
const STARTS_KEPT: usize = 16;

/// A named set of defences: `faultline demo --coordinator <name>`, `quorum.coordinator`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Coordinator {
    /// The chapter's coordinator: majority quorum, no checks.
    Naive,
    /// Content quorum (2f+1 of identical content), naming the outvoted.
    ContentQuorum,
    /// Content quorum, CRC32C and SHA-256.
    Checksummed,
    /// Checksummed, and acks signed with Ed25519.
    Signed,
    /// Majority quorum, with retries and idempotency keys.
    Retrying,
}

impl Coordinator {
    pub const ALL: [Coordinator; 5] = [
        Coordinator::Naive,
        Coordinator::ContentQuorum,
        Coordinator::Checksummed,
        Coordinator::Signed,
        Coordinator::Retrying,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Coordinator::Naive => "naive",
            Coordinator::ContentQuorum => "content-quorum",
            Coordinator::Checksummed => "checksummed",
            Coordinator::Signed => "signed",
            Coordinator::Retrying => "retrying",
        }
    }

    pub fn parse(name: &str) -> Option<Coordinator> {
        Coordinator::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The defences the preset switches on.
    pub fn defences(self) -> Defences {
        let naive = Defences::default();
        match self {
            Coordinator::Naive => naive,
            Coordinator::ContentQuorum => Defences { content_quorum: true, ..naive },
            Coordinator::Checksummed => Defences { content_quorum: true, crc32c: true, sha256: true, ..naive },
            Coordinator::Signed => {
                Defences { signature: Some(SignatureScheme::Ed25519), ..Coordinator::Checksummed.defences() }
            }
            Coordinator::Retrying => Defences { retry: Some(RETRY_DEFAULT), ..naive },
        }
    }
}

/// How acks are signed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SignatureScheme {
    /// HMAC-SHA256 with a per-follower secret the leader shares: cheap, but the leader could
    /// forge what it verifies.
    Hmac,
    /// Ed25519 (RFC 8032) with a per-follower key pair; the leader holds only public keys.
    Ed25519,
}

impl SignatureScheme {
    pub fn name(self) -> &'static str {
        match self {
            SignatureScheme::Hmac => "hmac",
            SignatureScheme::Ed25519 => "ed25519",
        }
    }

    fn len(self) -> usize {
        match self {
            SignatureScheme::Hmac => 32,
            SignatureScheme::Ed25519 => 64,
        }
    }
}

/// The coordinator's defences, each off by default (the naive coordinator).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Defences {
    /// Commit only with a Byzantine quorum of identical content; name the outvoted.
    pub content_quorum: bool,
    /// Every ack carries a CRC32C of its frame; the leader drops acks that fail it.
    pub crc32c: bool,
    /// Every ack carries a SHA-256 digest of its data; the leader drops acks whose digest
    /// does not match their data and the data it proposed.
    pub sha256: bool,
    /// Every ack is signed by its follower; the leader drops acks that do not verify under
    /// the key of the follower they claim to come from.
    pub signature: Option<SignatureScheme>,
    /// Re-send the append to followers that have not acked, this often, within the deadline.
    pub retry: Option<Span>,
    /// Adapt each round's deadline to the followers' observed ack latency, up to this.
    pub deadline_max: Option<Span>,
}

impl Defences {
    /// The preset's name when these are exactly a preset's defences, else a `+`-joined list
    /// such as `content-quorum+crc32c+retry=20ms`.
    pub fn label(&self) -> String {
        if let Some(c) = Coordinator::ALL.into_iter().find(|c| c.defences() == *self) {
            return c.name().to_owned();
        }
        let mut parts = vec![if self.content_quorum { "content-quorum" } else { "majority" }.to_owned()];
        if self.crc32c {
            parts.push("crc32c".into());
        }
        if self.sha256 {
            parts.push("sha256".into());
        }
        if let Some(s) = self.signature {
            parts.push(s.name().into());
        }
        if let Some(r) = self.retry {
            parts.push(format!("retry={}ms", r.as_millis_f64()));
        }
        if let Some(d) = self.deadline_max {
            parts.push(format!("deadline_max={}ms", d.as_millis_f64()));
        }
        parts.join("+")
    }
}

/// Parameters of the coordinator.
#[derive(Clone, Debug, PartialEq)]
pub struct QuorumConfig {
    pub followers: usize,
    pub deadline: Span,
    /// Rounds the leader runs, back to back.
    pub rounds: u64,
    /// The log index each append carries (the chapter's `idx=42`).
    pub index: u64,
    /// The value each append proposes (the chapter's `balance=9000`).
    pub data: String,
    pub defences: Defences,
    /// Seeds the per-node signing keys: node `i`'s secret is
    /// `SHA-256("faultline/quorum/node-key/v1" || key_seed || i)`. Keys are configuration,
    /// like a cluster's PKI: the same for every run seed.
    pub key_seed: u64,
    /// Followers write and fsync each append before acking it (the write-ahead rule a
    /// `lie` fault breaks). Off by default: the chapter's follower only remembers the
    /// append in memory, and a disk write per append is not free in the benchmark.
    pub persist: bool,
}

/// The Byzantine quorum for `n` followers: `⌈(n + f + 1) / 2⌉` with `f = (n - 1) / 3`,
/// which is `2f + 1` when `n = 3f + 1` and never less than a majority.
pub fn byzantine_quorum(followers: usize) -> usize {
    let f = followers.saturating_sub(1) / 3;
    (followers + f + 1).div_ceil(2)
}

impl QuorumConfig {
    /// Acks of one content needed to agree: a majority of the followers (the chapter's
    /// `len(followers) // 2 + 1`), or the Byzantine quorum under a content quorum.
    pub fn quorum(&self) -> usize {
        if self.defences.content_quorum { byzantine_quorum(self.followers) } else { self.followers / 2 + 1 }
    }

    pub fn node_names(&self) -> Vec<String> {
        std::iter::once("leader".to_owned()).chain((0..self.followers).map(|i| format!("f{i}"))).collect()
    }

    /// One state machine per node: the leader first, then the followers.
    pub fn nodes(&self) -> Vec<QuorumNode> {
        let data: Rc<str> = Rc::from(self.data.as_str());
        let d = &self.defences;
        let (signers, keys) = match d.signature {
            None => (vec![None; self.followers], None),
            Some(scheme) => {
                let (signers, ring) = keys::set_up(scheme, self.key_seed, self.followers);
                (signers.into_iter().map(Some).collect(), Some(ring))
            }
        };
        let leader = Leader {
            followers: self.followers,
            quorum: self.quorum(),
            deadline: self.deadline,
            deadline_max: d.deadline_max,
            retry: d.retry,
            content_quorum: d.content_quorum,
            crc32c: d.crc32c,
            proposal_sha256: d.sha256.then(|| sha256(&data)),
            checks: d.crc32c || d.sha256 || keys.is_some(),
            keys,
            rounds: self.rounds,
            index: self.index,
            data,
            round: 0,
            open: false,
            attempt: 0,
            round_deadline: self.deadline,
            answered: vec![false; self.followers],
            acks: Vec::with_capacity(self.followers),
            rejected: Vec::new(),
            tampered_seen: false,
            deadline_timer: None,
            retry_timer: None,
            starts: [(0, Time::ZERO); STARTS_KEPT],
            latency: if d.deadline_max.is_some() { vec![None; self.followers] } else { Vec::new() },
            scratch: Vec::new(),
            ledger: Ledger::default(),
            acked: vec![0; self.followers],
            last_agreed: 0,
        };
        std::iter::once(QuorumNode::Leader(Box::new(leader)))
            .chain(signers.into_iter().map(|signer| {
                QuorumNode::Follower(Follower {
                    persist: self.persist,
                    sealer: Sealer {
                        any: d.crc32c || d.sha256 || signer.is_some(),
                        crc32c: d.crc32c,
                        sha256: d.sha256,
                        signer,
                    },
                    last: None,
                    history: VecDeque::new(),
                    applied: 0,
                    duplicates: 0,
                    scratch: Vec::new(),
                })
            }))
            .collect()
    }
}

/// A node as the quorum protocol names it, for `Debug` output that matches the trace's
/// node names: `leader`, then `f0`, `f1`, ... (node `k` is follower `k - 1`). A claim to
/// be a node beyond the followers prints as a follower name nobody has.
struct Name(NodeId);

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.0 {
            0 => f.write_str("leader"),
            k => write!(f, "f{}", k - 1),
        }
    }
}

/// A node's name in a quorum run: `leader`, `f0`, `f1`, ... (node `k` is follower
/// `k - 1`, as in [`QuorumConfig::node_names`]; a corrupted claim to be node 9 of a
/// four-follower run is `f8`).
pub fn node_name(id: NodeId) -> String {
    Name(id).to_string()
}

fn sha256(data: &str) -> [u8; 32] {
    Sha256::digest(data.as_bytes()).into()
}

#[derive(Clone, Debug)]
pub enum QuorumTimer {
    Deadline { round: u64 },
    Retry { round: u64 },
}

/// Why the leader did not count an ack.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Reason {
    /// Its content lost the vote under a content quorum.
    #[serde(rename = "outvoted")]
    Outvoted,
    /// Its CRC32C was missing or did not match its frame.
    #[serde(rename = "bad checksum")]
    BadChecksum,
    /// Its signature was missing or did not verify under the claimed follower's key.
    #[serde(rename = "bad signature")]
    BadSignature,
    /// Its SHA-256 digest was missing, or did not match its data or the proposal.
    #[serde(rename = "digest mismatch")]
    DigestMismatch,
    /// The claimed follower had already been counted this round.
    #[serde(rename = "duplicate")]
    Duplicate,
    /// It claims to come from a node that is not a follower.
    #[serde(rename = "unknown voter")]
    UnknownVoter,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::Outvoted,
        Reason::BadChecksum,
        Reason::BadSignature,
        Reason::DigestMismatch,
        Reason::Duplicate,
        Reason::UnknownVoter,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Outvoted => "outvoted",
            Reason::BadChecksum => "bad checksum",
            Reason::BadSignature => "bad signature",
            Reason::DigestMismatch => "digest mismatch",
            Reason::Duplicate => "duplicate",
            Reason::UnknownVoter => "unknown voter",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ack the leader did not count, received while its round was open.
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The follower the ack claimed to come from.
    pub voter: NodeId,
    /// Who really sent it (ground truth: the network sender).
    pub sender: NodeId,
    pub reason: Reason,
}

impl fmt::Debug for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", Name(self.voter), self.reason)?;
        if self.sender != self.voter {
            write!(f, " (sent by {})", Name(self.sender))?;
        }
        Ok(())
    }
}

/// One round's outcome, reported by the leader when the round closes.
#[derive(Clone, PartialEq)]
pub struct RoundResult {
    pub round: u64,
    /// Acks counted: every ack received in time that passed the configured checks, once per
    /// follower, less the outvoted under a content quorum.
    pub acks: usize,
    pub followers: usize,
    pub quorum: usize,
    pub agreed: bool,
    pub tampered_seen: bool,
    pub proposed: Rc<str>,
    /// The content of the largest group of acks; `None` when no ack arrived.
    pub winning_data: Option<Rc<str>>,
    /// How many acks carried the winning content.
    pub winning_acks: usize,
    /// The followers whose acks were counted, in arrival order. Held inline for up to 8
    /// followers, so a round allocates nothing for it; it derefs to `&[NodeId]`.
    pub counted: SmallVec<[NodeId; 8]>,
    /// Acks received while the round was open that were not counted, in arrival order (the
    /// outvoted last).
    pub rejected: Vec<Rejected>,
    /// Ground truth the leader could not know: counted acks whose claimed follower is not
    /// their network sender, or whose index or data differ from the proposal.
    pub corrupt_counted: usize,
    /// The round's deadline (the configured one, or the adaptive one).
    pub deadline: Span,
}

impl fmt::Debug for RoundResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RoundResult {{ round: {}, acks: {}, followers: {}, quorum: {}, agreed: {}, tampered_seen: {}, \
             proposed: {:?}, winning_data: {:?}, winning_acks: {}, counted: [",
            self.round,
            self.acks,
            self.followers,
            self.quorum,
            self.agreed,
            self.tampered_seen,
            self.proposed,
            self.winning_data,
            self.winning_acks
        )?;
        for (i, v) in self.counted.iter().enumerate() {
            write!(f, "{}{}", if i > 0 { ", " } else { "" }, Name(*v))?;
        }
        f.write_str("]")?;
        if !self.rejected.is_empty() {
            write!(f, ", rejected: {:?}", self.rejected)?;
        }
        if self.corrupt_counted > 0 {
            write!(f, ", corrupt_counted: {}", self.corrupt_counted)?;
        }
        write!(f, ", deadline: {:?} }}", self.deadline)
    }
}

/// Counts of rejected acks by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RejectCounts([u64; Reason::ALL.len()]);

impl RejectCounts {
    pub fn get(&self, reason: Reason) -> u64 {
        self.0[reason as usize]
    }
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
    fn add(&mut self, reason: Reason) {
        self.0[reason as usize] += 1;
    }
}

/// The leader's account of every ack it received over the run, late ones included. The
/// `impersonation` counts use ground truth (an ack whose claimed follower is not its network
/// sender: a forgery, or a flipped voter field) that only the simulator has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    pub received: u64,
    pub counted: u64,
    /// Acks that passed the checks but arrived after their round closed.
    pub late: u64,
    /// Acks not counted, by reason; late ones that failed a check included.
    pub rejected: RejectCounts,
    pub impersonations: u64,
    pub impersonations_counted: u64,
    pub impersonations_rejected: RejectCounts,
    pub corrupt_counted: u64,
}

impl Ledger {
    fn note_rejected(&mut self, reason: Reason, impersonation: bool) {
        self.rejected.add(reason);
        if impersonation {
            self.impersonations_rejected.add(reason);
        }
    }
}

#[derive(Clone)]
pub enum QuorumNode {
    /// Boxed: the leader carries far more state than a follower.
    Leader(Box<Leader>),
    Follower(Follower),
}

impl QuorumNode {
    pub fn as_leader(&self) -> Option<&Leader> {
        match self {
            QuorumNode::Leader(l) => Some(l),
            QuorumNode::Follower(_) => None,
        }
    }

    pub fn as_follower(&self) -> Option<&Follower> {
        match self {
            QuorumNode::Follower(f) => Some(f),
            QuorumNode::Leader(_) => None,
        }
    }
}

/// An ack counted (so far) in the open round.
#[derive(Clone)]
struct Counted {
    voter: NodeId,
    sender: NodeId,
    index: u64,
    data: Rc<str>,
}

/// Smoothed ack latency of one follower, in nanoseconds (RFC 6298's SRTT and RTTVAR).
#[derive(Copy, Clone)]
struct Latency {
    smoothed: u64,
    variation: u64,
}

impl Latency {
    fn update(estimate: Option<Latency>, sample: u64) -> Latency {
        match estimate {
            None => Latency { smoothed: sample, variation: sample / 2 },
            Some(Latency { smoothed, variation }) => Latency {
                variation: (3 * variation + smoothed.abs_diff(sample)) / 4,
                smoothed: (7 * smoothed + sample) / 8,
            },
        }
    }

    /// How long to wait for this follower: `srtt + 4 rttvar`.
    fn timeout(self) -> u64 {
        self.smoothed.saturating_add(self.variation.saturating_mul(4))
    }
}

#[derive(Clone)]
pub struct Leader {
    followers: usize,
    quorum: usize,
    deadline: Span,
    deadline_max: Option<Span>,
    retry: Option<Span>,
    content_quorum: bool,
    crc32c: bool,
    /// The proposal's digest, when acks must carry a matching one.
    proposal_sha256: Option<[u8; 32]>,
    /// Any of `crc32c`, `proposal_sha256`, `keys`: one flag for the hot path to test.
    checks: bool,
    keys: Option<KeyRing>,
    rounds: u64,
    index: u64,
    data: Rc<str>,
    round: u64,
    open: bool,
    attempt: u32,
    round_deadline: Span,
    /// Per follower slot: has an ack claiming to be from it been counted this round?
    answered: Vec<bool>,
    /// The current round's counted acks, in arrival order.
    acks: Vec<Counted>,
    rejected: Vec<Rejected>,
    tampered_seen: bool,
    deadline_timer: Option<TimerId>,
    retry_timer: Option<TimerId>,
    /// `(round, start time)` of recent rounds, at `round % STARTS_KEPT`.
    starts: [(u64, Time); STARTS_KEPT],
    /// Per follower slot, when the deadline adapts (empty otherwise).
    latency: Vec<Option<Latency>>,
    scratch: Vec<u8>,
    ledger: Ledger,
    /// Per follower slot, the latest round it acked (a checked ack, late or not), and the
    /// latest round agreed: what the leader's metrics would export.
    acked: Vec<u64>,
    last_agreed: u64,
}

impl Leader {
    /// Every ack the leader received, accounted for.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The latest round follower slot `slot` (follower `f{slot}`) acked.
    pub fn acked_round(&self, slot: usize) -> Option<u64> {
        self.acked.get(slot).copied()
    }

    /// The latest round agreed.
    pub fn last_agreed(&self) -> u64 {
        self.last_agreed
    }

    /// This round's deadline: the configured one, or, when it adapts, the quorum-th
    /// smallest per-follower timeout clamped to `[deadline, deadline_max]`. Until a quorum
    /// of followers have been timed there is nothing to adapt to.
    fn next_deadline(&self) -> Span {
        let Some(max) = self.deadline_max else { return self.deadline };
        let mut timeouts: Vec<u64> = self.latency.iter().flatten().map(|l| l.timeout()).collect();
        if timeouts.len() < self.quorum {
            return self.deadline;
        }
        timeouts.sort_unstable();
        Span::from_nanos(timeouts[self.quorum - 1]).clamp(self.deadline, max)
    }

    fn start_round(&mut self, ctx: &mut Context<'_, QuorumNode>) {
        self.round += 1;
        self.open = true;
        self.attempt = 0;
        self.acks.clear();
        self.rejected.clear();
        self.tampered_seen = false;
        self.answered.iter_mut().for_each(|a| *a = false);
        self.starts[self.round as usize % STARTS_KEPT] = (self.round, ctx.now());
        self.round_deadline = self.next_deadline();
        // The deadline is armed before the appends leave (it is the round's own clock, and
        // in the simulator the later-timed timer then passes no freshly queued append).
        self.deadline_timer = Some(ctx.set_timer(self.round_deadline, QuorumTimer::Deadline { round: self.round }));
        for f in 1..=self.followers {
            self.send_append(ctx, NodeId(f as u32));
        }
        if let Some(retry) = self.retry
            && retry < self.round_deadline
        {
            self.retry_timer = Some(ctx.set_timer(retry, QuorumTimer::Retry { round: self.round }));
        }
    }

    fn send_append(&self, ctx: &mut Context<'_, QuorumNode>, to: NodeId) {
        let append = Append {
            round: self.round,
            index: self.index,
            follower: to,
            attempt: self.attempt,
            data: Rc::clone(&self.data),
        };
        ctx.send(to, QuorumMsg::Append(append));
    }

    /// Re-sends the append to every follower not yet counted, and schedules the next retry
    /// if it still falls before the deadline.
    fn retry(&mut self, ctx: &mut Context<'_, QuorumNode>) {
        self.attempt += 1;
        for slot in 0..self.followers {
            if !self.answered[slot] {
                self.send_append(ctx, NodeId(slot as u32 + 1));
            }
        }
        let retry = self.retry.expect("retries are configured");
        let next = retry.as_nanos().saturating_mul(u64::from(self.attempt) + 1);
        self.retry_timer = (next < self.round_deadline.as_nanos())
            .then(|| ctx.set_timer(retry, QuorumTimer::Retry { round: self.round }));
    }

    /// Checks an ack against the configured defences; `Ok` is the claimed follower's slot.
    /// The checksum goes first: no field of a frame that fails it can be trusted, the
    /// claimed follower included.
    fn check(&mut self, ack: &Ack) -> Result<usize, Reason> {
        let slot = (ack.voter.index().wrapping_sub(1) < self.followers).then(|| ack.voter.index() - 1);
        if !self.checks {
            return slot.ok_or(Reason::UnknownVoter);
        }
        let proof = ack.proof.as_deref();
        let (signed_end, checksummed_end) = ack.encode_into(&mut self.scratch);
        if self.crc32c && proof.and_then(|p| p.crc32c) != Some(crc32c::crc32c(&self.scratch[..checksummed_end])) {
            return Err(Reason::BadChecksum);
        }
        let slot = slot.ok_or(Reason::UnknownVoter)?;
        if let Some(keys) = &self.keys {
            let signature = proof.and_then(|p| p.signature.as_deref());
            if !signature.is_some_and(|s| keys.verify(slot, &self.scratch[..signed_end], s)) {
                return Err(Reason::BadSignature);
            }
        }
        if let Some(proposal) = &self.proposal_sha256 {
            let digest = proof.and_then(|p| p.sha256.as_ref());
            if digest != Some(proposal) || sha256(&ack.data) != *proposal {
                return Err(Reason::DigestMismatch);
            }
        }
        Ok(slot)
    }

    /// Learns from an authentic ack how long follower `slot` takes, timed from the start
    /// of the ack's round (late acks teach too: they are the slow ones).
    fn learn(&mut self, slot: usize, round: u64, now: Time) {
        if self.deadline_max.is_none() {
            return;
        }
        let (r, started) = self.starts[round as usize % STARTS_KEPT];
        if r == round && round > 0 {
            let sample = now.since(started).as_nanos();
            self.latency[slot] = Some(Latency::update(self.latency[slot], sample));
        }
    }

    fn on_ack(&mut self, ctx: &mut Context<'_, QuorumNode>, from: NodeId, ack: Ack) {
        self.ledger.received += 1;
        let impersonation = ack.voter != from;
        self.ledger.impersonations += impersonation as u64;
        let verdict = self.check(&ack);
        if let Ok(slot) = verdict {
            self.learn(slot, ack.round, ctx.now());
            self.acked[slot] = self.acked[slot].max(ack.round);
        }
        if !self.open || ack.round != self.round {
            match verdict {
                Ok(_) => self.ledger.late += 1,
                Err(reason) => self.ledger.note_rejected(reason, impersonation),
            }
            return; // late for its round (or for no round at all)
        }
        if !same_data(&ack.data, &self.data) {
            self.tampered_seen = true;
        }
        let verdict = verdict.and_then(|slot| if self.answered[slot] { Err(Reason::Duplicate) } else { Ok(slot) });
        match verdict {
            Err(reason) => {
                self.ledger.note_rejected(reason, impersonation);
                self.rejected.push(Rejected { voter: ack.voter, sender: from, reason });
            }
            Ok(slot) => {
                self.answered[slot] = true;
                self.acks.push(Counted { voter: ack.voter, sender: from, index: ack.index, data: ack.data });
                if self.acks.len() == self.followers {
                    self.close_round(ctx);
                }
            }
        }
    }

    fn close_round(&mut self, ctx: &mut Context<'_, QuorumNode>) {
        self.open = false;
        for t in [self.deadline_timer.take(), self.retry_timer.take()].into_iter().flatten() {
            ctx.cancel_timer(t);
        }
        // Group by content. Almost always every ack carries the proposal itself (the
        // follower echoes the leader's allocation): then there is one group, and no string
        // is compared. Otherwise acks are few, and grouping them pairwise is cheap.
        let proposal = |a: &Counted| a.index == self.index && Rc::ptr_eq(&a.data, &self.data);
        let one_group = self.acks.iter().all(proposal);
        let (winning_acks, winner) = if one_group {
            (self.acks.len(), self.acks.first().map(|a| (a.index, Rc::clone(&a.data))))
        } else {
            let same = |a: &Counted, b: &Counted| a.index == b.index && same_data(&a.data, &b.data);
            let mut winning: Option<(usize, usize)> = None;
            for (i, candidate) in self.acks.iter().enumerate() {
                if self.acks[..i].iter().any(|a| same(a, candidate)) {
                    continue; // this content's group was counted at its first ack
                }
                let count = self.acks[i..].iter().filter(|a| same(a, candidate)).count();
                if winning.is_none_or(|(_, best)| count > best) {
                    winning = Some((i, count));
                }
            }
            (winning.map_or(0, |(_, c)| c), winning.map(|(i, _)| (self.acks[i].index, Rc::clone(&self.acks[i].data))))
        };
        let agreed = winning_acks >= self.quorum;
        if agreed {
            self.last_agreed = self.round;
        }
        // With one group every ack carries the winning content: nobody is outvoted.
        if self.content_quorum
            && agreed
            && !one_group
            && let Some((index, data)) = &winner
        {
            // Only the winning content counts; everyone else is named as outvoted. A round
            // that did not agree outvoted nobody: no content won, however the acks split.
            let won = |a: &Counted| a.index == *index && same_data(&a.data, data);
            for a in self.acks.iter().filter(|a| !won(a)) {
                self.ledger.note_rejected(Reason::Outvoted, a.voter != a.sender);
                self.rejected.push(Rejected { voter: a.voter, sender: a.sender, reason: Reason::Outvoted });
            }
            self.acks.retain(won);
        }
        let impersonations = self.acks.iter().filter(|a| a.voter != a.sender).count();
        // An ack is corrupt if it is an impersonation or does not carry the proposal; with
        // one group every ack carries the proposal.
        let corrupt = |a: &&Counted| a.voter != a.sender || a.index != self.index || !same_data(&a.data, &self.data);
        let corrupt_counted = if one_group { impersonations } else { self.acks.iter().filter(corrupt).count() };
        self.ledger.counted += self.acks.len() as u64;
        self.ledger.corrupt_counted += corrupt_counted as u64;
        self.ledger.impersonations_counted += impersonations as u64;
        ctx.observe(RoundResult {
            round: self.round,
            acks: self.acks.len(),
            followers: self.followers,
            quorum: self.quorum,
            agreed,
            tampered_seen: self.tampered_seen,
            proposed: Rc::clone(&self.data),
            winning_data: winner.map(|(_, data)| data),
            winning_acks,
            counted: self.acks.iter().map(|a| a.voter).collect(),
            rejected: std::mem::take(&mut self.rejected),
            corrupt_counted,
            deadline: self.round_deadline,
        });
        if self.round < self.rounds {
            self.start_round(ctx);
        }
    }
}

fn same_data(a: &Rc<str>, b: &Rc<str>) -> bool {
    Rc::ptr_eq(a, b) || a == b
}

/// What a follower attaches to its acks.
#[derive(Clone)]
struct Sealer {
    /// Any of the three below: one flag for the hot path to test.
    any: bool,
    crc32c: bool,
    sha256: bool,
    signer: Option<NodeSigner>,
}

impl Sealer {
    fn seal(&self, ack: &mut Ack, scratch: &mut Vec<u8>) {
        if !self.any {
            return;
        }
        // Placeholders first: the flags byte, which the signature covers, says what follows.
        ack.proof = Some(Box::new(Proof {
            sha256: self.sha256.then(|| sha256(&ack.data)),
            signature: self.signer.as_ref().map(|s| vec![0; s.scheme().len()].into()),
            crc32c: self.crc32c.then_some(0),
        }));
        if let Some(signer) = &self.signer {
            let (signed_end, _) = ack.encode_into(scratch);
            let signature = signer.sign(&scratch[..signed_end]);
            ack.proof.as_mut().expect("set above").signature = Some(signature);
        }
        ack.reseal(scratch);
    }
}

/// The last append a follower applied.
#[derive(Clone)]
struct Applied {
    round: u64,
    index: u64,
    data: Rc<str>,
}

#[derive(Clone)]
pub struct Follower {
    persist: bool,
    sealer: Sealer,
    last: Option<Applied>,
    /// Distinct values the follower held and since when (its own clock), oldest first: what
    /// a stale follower answers from.
    history: VecDeque<(Time, Rc<str>)>,
    applied: u64,
    duplicates: u64,
    scratch: Vec<u8>,
}

impl Follower {
    /// Appends applied (persisted), one per idempotency key.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Whether it persists each append before acking it (write-ahead).
    pub fn persists(&self) -> bool {
        self.persist
    }

    /// The round of the last append applied (0 before any).
    pub fn last_round(&self) -> u64 {
        self.last.as_ref().map_or(0, |a| a.round)
    }

    /// Appends received again for a key already applied, and re-acked without applying.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    fn on_append(&mut self, ctx: &mut Context<'_, QuorumNode>, from: NodeId, append: Append) {
        if from != LEADER || append.follower != ctx.me() {
            return; // not from the leader, or not addressed to this follower
        }
        match &self.last {
            Some(last) if append.round < last.round => return, // superseded by a later round
            Some(last) if append.round == last.round => self.duplicates += 1,
            _ => {
                // Durable before acknowledged: the write-ahead rule a `lie` fault breaks.
                if self.persist {
                    ctx.persist(ENTRY_KEY, encode_entry(append.round, append.index, &append.data));
                }
                self.applied += 1;
                let now = ctx.now();
                if self.history.back().is_none_or(|(_, d)| !same_data(d, &append.data)) {
                    if self.history.len() == HISTORY_MAX {
                        self.history.pop_front();
                    }
                    self.history.push_back((now, Rc::clone(&append.data)));
                }
                self.last = Some(Applied { round: append.round, index: append.index, data: append.data });
            }
        }
        let last = self.last.as_ref().expect("an append was applied");
        let data = match ctx.stale() {
            Some(age) => self.as_of(ctx.now(), age),
            None => Rc::clone(&last.data),
        };
        let mut ack = Ack { round: last.round, index: last.index, voter: ctx.me(), data, proof: None };
        self.sealer.seal(&mut ack, &mut self.scratch);
        ctx.send(from, QuorumMsg::Ack(ack));
    }

    /// The value the follower held `age` before `now`, or its initial empty state when it
    /// remembers nothing that old.
    fn as_of(&self, now: Time, age: Span) -> Rc<str> {
        let Some(cutoff) = now.as_nanos().checked_sub(age.as_nanos()) else { return Rc::from("") };
        self.history
            .iter()
            .rev()
            .find(|(t, _)| t.as_nanos() <= cutoff)
            .map_or_else(|| Rc::from(""), |(_, d)| Rc::clone(d))
    }
}

fn encode_entry(round: u64, index: u64, data: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + data.len());
    out.extend_from_slice(&round.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(data.as_bytes());
    out
}

fn decode_entry(bytes: &[u8]) -> Option<Applied> {
    let mut r = Reader(bytes);
    let (round, index) = (r.u64()?, r.u64()?);
    let data = std::str::from_utf8(r.0).ok()?;
    Some(Applied { round, index, data: Rc::from(data) })
}

/// The round of the last append a follower made durable, read from its disk: what a
/// crash would leave it with.
pub fn durable_round(disk: &Disk) -> Option<u64> {
    disk.read_durable(ENTRY_KEY).and_then(|bytes| Reader(bytes).u64())
}

impl Protocol for QuorumNode {
    type Msg = QuorumMsg;
    type Timer = QuorumTimer;
    type Obs = RoundResult;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        match self {
            QuorumNode::Leader(leader) if leader.rounds > 0 => leader.start_round(ctx),
            QuorumNode::Leader(_) => {}
            // A restarted follower remembers what it had made durable, so the keys it
            // applied before the crash are not applied twice.
            QuorumNode::Follower(follower) => follower.last = ctx.read(ENTRY_KEY).as_deref().and_then(decode_entry),
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: QuorumMsg) {
        // Followers ignore acks; the leader ignores appends.
        match self {
            QuorumNode::Follower(follower) => {
                if let QuorumMsg::Append(append) = msg {
                    follower.on_append(ctx, from, append);
                }
            }
            QuorumNode::Leader(leader) => {
                if let QuorumMsg::Ack(ack) = msg {
                    leader.on_ack(ctx, from, ack);
                }
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, _id: TimerId, timer: QuorumTimer) {
        let QuorumNode::Leader(leader) = self else { return };
        match timer {
            QuorumTimer::Deadline { round } if leader.open && round == leader.round => {
                leader.deadline_timer = None; // it is the one firing: nothing to cancel
                leader.close_round(ctx);
            }
            QuorumTimer::Retry { round } if leader.open && round == leader.round => leader.retry(ctx),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Message;
    use crate::rng::SimRng;
    use crate::rng::{Stream, stream};
    use proptest::prelude::*;

    fn rng() -> SimRng {
        stream(1, Stream::Setup(0))
    }

    fn sealed(defences: &Defences, voter: NodeId) -> (Ack, Leader) {
        let config = QuorumConfig {
            followers: 4,
            deadline: Span::from_millis(200),
            rounds: 1,
            index: 42,
            data: "balance=9000".into(),
            defences: defences.clone(),
            key_seed: 7,
            persist: true,
        };
        let mut nodes = config.nodes();
        let QuorumNode::Follower(follower) = nodes.remove(voter.index()) else { panic!("a follower") };
        let QuorumNode::Leader(leader) = nodes.remove(0) else { panic!("the leader") };
        let mut a = Ack { round: 1, index: 42, voter, data: Rc::from("balance=9000"), proof: None };
        follower.sealer.seal(&mut a, &mut Vec::new());
        (a, *leader)
    }

    fn all_defences(signature: SignatureScheme) -> Defences {
        Defences { signature: Some(signature), ..Coordinator::Checksummed.defences() }
    }

    proptest! {
        #[test]
        fn a_flipped_bit_never_passes_the_crc(bit in 0usize..10_000, scheme in 0u8..3) {
            let defences = match scheme {
                0 => Coordinator::Checksummed.defences(),
                1 => all_defences(SignatureScheme::Hmac),
                _ => all_defences(SignatureScheme::Ed25519),
            };
            let (a, mut leader) = sealed(&defences, NodeId(3));
            let mut bytes = QuorumMsg::Ack(a).encode().expect("encodes");
            let bit = bit % (bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            if let Some(QuorumMsg::Ack(corrupted)) = QuorumMsg::decode(&bytes) {
                prop_assert_eq!(leader.check(&corrupted), Err(Reason::BadChecksum));
            }
        }
    }

    #[test]
    fn sealed_acks_pass_every_check_and_tampered_ones_fail_the_right_one() {
        for defences in [
            Coordinator::Checksummed.defences(),
            all_defences(SignatureScheme::Hmac),
            all_defences(SignatureScheme::Ed25519),
        ] {
            let (a, mut leader) = sealed(&defences, NodeId(2));
            assert_eq!(leader.check(&a), Ok(1), "{defences:?}");
            // A tamperer recomputes the checksums; the digest no longer matches the
            // proposal, and a signature no longer verifies.
            let mut tampered = QuorumMsg::Ack(a.clone());
            assert!(tampered.tamper(&mut rng()));
            let QuorumMsg::Ack(tampered) = tampered else { unreachable!() };
            let expect = if defences.signature.is_some() { Reason::BadSignature } else { Reason::DigestMismatch };
            assert_eq!(leader.check(&tampered), Err(expect), "{defences:?}");
            // An ack without its proof fails the first check.
            assert_eq!(leader.check(&Ack { proof: None, ..a.clone() }), Err(Reason::BadChecksum));
            // A claim to be a node that is not a follower, checksummed as such.
            let stranger = Ack { voter: NodeId(9), ..a }.rewritten(Rc::from("balance=9000"));
            assert_eq!(leader.check(&stranger), Err(Reason::UnknownVoter));
        }
    }

    #[test]
    fn a_forged_ack_fails_the_victims_signature_under_both_schemes() {
        for scheme in [SignatureScheme::Hmac, SignatureScheme::Ed25519] {
            let (a, mut leader) = sealed(&all_defences(scheme), NodeId(2));
            let Some(QuorumMsg::Ack(forged)) = QuorumMsg::Ack(a).forge(NodeId(4), &mut rng()) else {
                panic!("acks can be forged")
            };
            assert_eq!(forged.voter, NodeId(4));
            assert!(forged.data.ends_with(TAMPER_SUFFIX));
            assert_eq!(leader.check(&forged), Err(Reason::BadSignature), "{scheme:?}");
            // Even with the true data, the forger's key is not the victim's.
            let (mine, _) = sealed(&all_defences(scheme), NodeId(2));
            let claimed = Ack { voter: NodeId(4), ..mine };
            assert_eq!(leader.check(&claimed.rewritten(Rc::clone(&claimed.data))), Err(Reason::BadSignature));
        }
    }

    #[test]
    fn byzantine_quorums() {
        // n = 3f + 1 gives 2f + 1; other sizes never fall below a majority.
        let q: Vec<usize> = (1..=10).map(byzantine_quorum).collect();
        assert_eq!(q, [1, 2, 2, 3, 4, 4, 5, 6, 6, 7]);
        for n in 1..=100 {
            assert!(byzantine_quorum(n) > n / 2);
        }
    }

    #[test]
    fn latency_estimates_follow_rfc_6298() {
        let first = Latency::update(None, 800);
        assert_eq!((first.smoothed, first.variation, first.timeout()), (800, 400, 2400));
        let second = Latency::update(Some(first), 400);
        assert_eq!((second.smoothed, second.variation), (750, 400));
    }

    #[test]
    fn presets_have_their_own_labels_and_overrides_are_spelt_out() {
        for c in Coordinator::ALL {
            assert_eq!(c.defences().label(), c.name());
            assert_eq!(Coordinator::parse(c.name()), Some(c));
        }
        let custom = Defences { signature: Some(SignatureScheme::Hmac), ..Coordinator::Signed.defences() };
        assert_eq!(custom.label(), "content-quorum+crc32c+sha256+hmac");
        let retry = Defences {
            retry: Some(Span::from_millis(20)),
            deadline_max: Some(Span::from_secs(2)),
            ..Default::default()
        };
        assert_eq!(retry.label(), "majority+retry=20ms+deadline_max=2000ms");
    }

    #[test]
    fn debug_output_names_nodes_as_the_trace_does() {
        let (a, _) = sealed(&Coordinator::Checksummed.defences(), NodeId(1));
        let text = format!("{:?}", QuorumMsg::Ack(a));
        assert!(text.starts_with("Ack { round: 1, index: 42, voter: f0, data: \"balance=9000\", sha256: "), "{text}");
        assert!(text.contains("crc32c: "), "{text}");
        let r = Rejected { voter: NodeId(4), sender: NodeId(2), reason: Reason::BadSignature };
        assert_eq!(format!("{r:?}"), "f3: bad signature (sent by f1)");
    }

    #[test]
    fn durable_round_reads_what_a_crash_would_leave() {
        let mut disk = Disk::default();
        assert_eq!(durable_round(&disk), None);
        disk.write(ENTRY_KEY, encode_entry(5, 42, "x"));
        assert_eq!(durable_round(&disk), None, "buffered, not yet synced");
        disk.sync();
        assert_eq!(durable_round(&disk), Some(5));
        let entry = decode_entry(disk.read(ENTRY_KEY).expect("written")).expect("decodes");
        assert_eq!((entry.round, entry.index, &*entry.data), (5, 42, "x"));
    }
}
