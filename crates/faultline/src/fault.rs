//! Faults as data: what goes wrong, on which node, over which window of virtual time.
//!
//! Each configured [`Fault`] has an index (its [`FaultId`]) that the trace carries as ground
//! truth: every event a fault caused (a drop, a delay, a tampered message, a deferral while
//! paused, a crash) names it. The catalogue, by failure model (Schneider 1990; Cristian
//! 1991; Huang et al. 2017 for gray failure), is documented with its parameters, signatures
//! and defences in docs/failure-models.md and listed by `faultline faults`:
//!
//! - **crash**: `crash` (crash-stop), `fail-stop` (peers are told at once), `restart`
//!   (crash-recovery: unsynced writes are lost), `half-open` (probes answered, application
//!   dead);
//! - **omission**: `omit-send`, `omit-receive`, `omit-general` (probability per message),
//!   `omit-every-nth` (deterministic), `omit-large` (above a size), `partition` (per link,
//!   one-way or both), `duplicate`, `reorder`;
//! - **timing**: `delay` (extra latency per message), `pause` (stop-the-world), `skew`
//!   (clock offset and drift), `slow-disk` (fsync latency stalls the node);
//! - **Byzantine**: `tamper`, `equivocate`, `replay`, `stale`, `lie` (acks writes it never
//!   made durable), `flip` (bit corruption of the encoded message), `forge` (claims another
//!   node's identity);
//! - **gray**: the data plane fails or slows while health probes pass.
//!
//! Faults act at three levels: node state switched by scheduled window events (crash,
//! pause, half-open, skew, stale, lie, slow-disk), send-time verdicts decided here by the
//! [`Injector`] (omission, delay, reorder, duplicate and the message-rewriting Byzantine
//! faults), and protocol hooks the faulty node's own code honours (`Message::tamper` and
//! friends, `Context::stale`). Byzantine behaviour rewrites a process's output; it is not the
//! network's job (TigerBeetle's packet simulator, turmoil).

use std::collections::VecDeque;
use std::fmt;

use rand::Rng;
use rand_distr::{Distribution, Geometric};
use serde::Serialize;

use crate::latency::{LatencyDist, Sampler};
use crate::protocol::{Message, NodeId, Plane};
use crate::rng::{SimRng, Stream, stream};
use crate::time::{Span, Time};

/// A configured fault's index in its run, carried by every trace event it causes.
pub type FaultId = u16;

/// The failure model a fault belongs to.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    Crash,
    Omission,
    Timing,
    Byzantine,
    Gray,
}

impl Model {
    pub const fn name(self) -> &'static str {
        match self {
            Model::Crash => "crash",
            Model::Omission => "omission",
            Model::Timing => "timing",
            Model::Byzantine => "byzantine",
            Model::Gray => "gray",
        }
    }
}

/// Which of a node's messages an omission fault loses.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Messages the node sends (send-omission).
    Send,
    /// Messages sent to the node (receive-omission).
    Receive,
    /// Both (general omission).
    General,
}

impl Direction {
    fn loses_outgoing(self) -> bool {
        matches!(self, Direction::Send | Direction::General)
    }
    fn loses_incoming(self) -> bool {
        matches!(self, Direction::Receive | Direction::General)
    }
}

/// What a fault does while it is active.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultKind {
    /// Crash-stop: from `start` the node handles nothing and sends nothing, forever.
    Crash,
    /// Crash-stop that every other node is told of at once (`Protocol::on_peer_down`).
    FailStop,
    /// Crash-recovery: down over the window, then rebuilt from its initial state and its
    /// durable disk; writes it had not synced are lost.
    Restart,
    /// The transport looks alive (probes are answered) but the application is dead: data
    /// messages are swallowed and timers stop.
    HalfOpen,
    /// Lose messages in `direction` with probability `p` each.
    Omit { direction: Direction, p: f64 },
    /// Lose every `n`-th message in `direction` (deterministic: the NIC firmware bug).
    OmitEveryNth { direction: Direction, n: u64 },
    /// Lose messages in `direction` larger than `bytes` on the wire.
    OmitLarge { direction: Direction, bytes: usize },
    /// Lose messages between the node and `peers`: `Send` cuts node -> peers, `Receive`
    /// cuts peers -> node, `General` both. Each message on a cut link is lost with
    /// probability `p` (1: a clean cut; below 1: a lossy link, one bad cable or NIC queue).
    Partition { peers: Vec<NodeId>, direction: Direction, p: f64 },
    /// Deliver a second copy of a sent message with probability `p`.
    Duplicate { p: f64 },
    /// With probability `p`, hold a sent message back by a delay from `extra`, so later
    /// messages overtake it.
    Reorder { p: f64, extra: LatencyDist },
    /// Add a delay drawn from `extra` to every message the node sends.
    Delay { extra: LatencyDist },
    /// Between `start` and `end` the node processes nothing; what arrives waits.
    Pause,
    /// The node's clock reads `offset` off and drifts by `drift_ppm` parts per million.
    Skew { offset: i64, drift_ppm: f64 },
    /// Every fsync takes a delay from `extra`, and the node stalls for it.
    SlowDisk { extra: LatencyDist },
    /// With probability `p`, rewrite each message the node sends (`Message::tamper`).
    Tamper { p: f64 },
    /// With probability `p`, send different content to different peers (`Message::equivocate`).
    Equivocate { p: f64 },
    /// With probability `p` per send, also re-send one of the node's earlier messages.
    Replay { p: f64 },
    /// Answer reads from state as it was `age` ago, reporting success (`Context::stale`).
    Stale { age: Span },
    /// Acknowledge writes whose fsync silently did nothing.
    Lie,
    /// With probability `p`, flip `bits` random bits of the encoded message.
    Flip { p: f64, bits: u32 },
    /// With probability `p` per send, also send a copy forged to claim `victim` sent it.
    Forge { victim: NodeId, p: f64 },
    /// Data-plane messages to and from the node are lost with probability `p` and delayed
    /// by `extra`; probes pass untouched.
    Gray { p: f64, extra: Option<LatencyDist> },
}

impl FaultKind {
    /// The catalogue row this fault is an instance of.
    pub fn fault_name(&self) -> FaultName {
        use FaultKind::*;
        match self {
            Crash => FaultName::Crash,
            FailStop => FaultName::FailStop,
            Restart => FaultName::Restart,
            HalfOpen => FaultName::HalfOpen,
            Omit { direction: Direction::Send, .. } => FaultName::OmitSend,
            Omit { direction: Direction::Receive, .. } => FaultName::OmitReceive,
            Omit { direction: Direction::General, .. } => FaultName::OmitGeneral,
            OmitEveryNth { .. } => FaultName::OmitEveryNth,
            OmitLarge { .. } => FaultName::OmitLarge,
            Partition { .. } => FaultName::Partition,
            Duplicate { .. } => FaultName::Duplicate,
            Reorder { .. } => FaultName::Reorder,
            Delay { .. } => FaultName::Delay,
            Pause => FaultName::Pause,
            Skew { .. } => FaultName::Skew,
            SlowDisk { .. } => FaultName::SlowDisk,
            Tamper { .. } => FaultName::Tamper,
            Equivocate { .. } => FaultName::Equivocate,
            Replay { .. } => FaultName::Replay,
            Stale { .. } => FaultName::Stale,
            Lie => FaultName::Lie,
            Flip { .. } => FaultName::Flip,
            Forge { .. } => FaultName::Forge,
            Gray { .. } => FaultName::Gray,
        }
    }

    pub fn model(&self) -> Model {
        self.fault_name().model()
    }

    /// The glossary word for the fault (docs/glossary.md).
    pub fn name(&self) -> &'static str {
        self.fault_name().name()
    }

    /// Whether the injector judges the node's outgoing messages (and so needs to see them).
    fn judges_outgoing(&self) -> bool {
        use FaultKind::*;
        match self {
            Omit { direction, .. } | OmitEveryNth { direction, .. } | OmitLarge { direction, .. } => {
                direction.loses_outgoing()
            }
            Partition { .. } | Gray { .. } => true,
            Duplicate { .. } | Reorder { .. } | Delay { .. } => true,
            Tamper { .. } | Equivocate { .. } | Replay { .. } | Flip { .. } | Forge { .. } => true,
            Crash | FailStop | Restart | HalfOpen | Pause | Skew { .. } | SlowDisk { .. } | Stale { .. } | Lie => false,
        }
    }

    /// Whether the injector judges messages sent to the node.
    fn judges_incoming(&self) -> bool {
        use FaultKind::*;
        match self {
            Omit { direction, .. } | OmitEveryNth { direction, .. } | OmitLarge { direction, .. } => {
                direction.loses_incoming()
            }
            Partition { .. } | Gray { .. } => true,
            _ => false,
        }
    }
}

/// One fault on one node over `[start, end)`; `end: None` means until the run ends.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    pub node: NodeId,
    pub kind: FaultKind,
    pub start: Time,
    pub end: Option<Time>,
}

/// The causes of one event: up to three fault ids (e.g. delayed by one fault, tampered by
/// another, held by a pause). Inline and `Copy`, so the hot path never allocates for it;
/// six bytes, because every pending event carries one. `FaultId::MAX` marks an empty slot:
/// an injector takes fewer than `FaultId::MAX` faults, so no fault has that id.
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct Causes([FaultId; 3]);

impl Default for Causes {
    fn default() -> Self {
        Causes([Causes::NONE; 3])
    }
}

impl fmt::Debug for Causes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Causes {
    const NONE: FaultId = FaultId::MAX;

    pub fn one(id: FaultId) -> Self {
        debug_assert_ne!(id, Causes::NONE);
        Causes([id, Causes::NONE, Causes::NONE])
    }
    /// Adds a cause; a fourth distinct cause replaces the last (never seen with the
    /// catalogue today, where an event has at most delay, tamper and pause).
    pub fn add(&mut self, id: FaultId) {
        debug_assert_ne!(id, Causes::NONE);
        for slot in &mut self.0 {
            if *slot == id {
                return;
            }
            if *slot == Causes::NONE {
                *slot = id;
                return;
            }
        }
        self.0[2] = id;
    }
    pub fn is_empty(&self) -> bool {
        self.0[0] == Causes::NONE
    }
    pub fn iter(&self) -> impl Iterator<Item = FaultId> + '_ {
        self.0.iter().copied().take_while(|&id| id != Causes::NONE)
    }
}

/// The injector's decision about one message at send time.
pub enum Verdict {
    /// Lost; the fault that lost it.
    Drop(FaultId),
    /// Corrupted beyond decoding by this fault: it travels, and the receiver drops it.
    Garble(FaultId),
    /// Sent, with extra delay in nanoseconds and the faults that shaped it.
    Pass { extra_ns: u64, causes: Causes },
}

/// An extra message a fault makes a node send: a duplicate, a replayed old message, or a
/// forgery. Sent after the original, through the network, and not judged again.
pub struct Extra<M> {
    pub to: NodeId,
    pub msg: M,
    pub extra_ns: u64,
    pub causes: Causes,
}

/// A Bernoulli process over the messages a fault judges: each fires independently with
/// probability `p`. Rather than a coin per message, it draws the gap to the next firing
/// from the geometric distribution and counts down (the same process, sampled the way
/// profilers sample), so a rarely-firing fault costs a decrement per message, not a draw.
struct Coin {
    gap: Option<Geometric>,
    /// Judged messages left before the next firing. A coin that never fires (p = 0)
    /// starts at u64::MAX, more messages than any run sends; one that always fires
    /// (p = 1) stays at 0.
    countdown: u64,
}

impl Coin {
    fn new(p: f64, rng: &mut SimRng) -> Self {
        if p <= 0.0 {
            return Coin { gap: None, countdown: u64::MAX };
        }
        let gap = (p < 1.0).then(|| Geometric::new(p).expect("0 < p < 1 is a valid geometric parameter"));
        let countdown = gap.as_ref().map_or(0, |g| g.sample(rng));
        Coin { gap, countdown }
    }

    #[inline]
    fn flip(&mut self, rng: &mut SimRng) -> bool {
        if self.countdown > 0 {
            self.countdown -= 1;
            return false;
        }
        if let Some(g) = &self.gap {
            self.countdown = g.sample(rng);
        }
        true
    }
}

/// Every n-th judged message, counted down (no division per message).
struct Nth {
    n: u64,
    left: u64,
}

impl Nth {
    /// Counts one message; true when it is the n-th since the last.
    #[inline]
    fn tick(&mut self) -> bool {
        self.left -= 1;
        if self.left == 0 {
            self.left = self.n;
            true
        } else {
            false
        }
    }
}

/// The probability of firing per judged message, for the faults that have one.
fn probability(kind: &FaultKind) -> f64 {
    match kind {
        FaultKind::Omit { p, .. }
        | FaultKind::Duplicate { p }
        | FaultKind::Reorder { p, .. }
        | FaultKind::Tamper { p }
        | FaultKind::Equivocate { p }
        | FaultKind::Replay { p }
        | FaultKind::Flip { p, .. }
        | FaultKind::Forge { p, .. }
        | FaultKind::Gray { p, .. }
        | FaultKind::Partition { p, .. } => *p,
        _ => 0.0,
    }
}

/// How many of a node's past messages a replay fault keeps to choose from, and how far
/// apart they are: one message in every REPLAY_STRIDE is kept.
const REPLAY_MEMORY: usize = 16;
const REPLAY_STRIDE: u64 = 8;

struct Injected<M> {
    fault: Fault,
    rng: SimRng,
    coin: Coin,
    sampler: Option<Sampler>,
    active: bool,
    fired: u64,
    /// Every-nth's count of messages left before the next drop (replay's before the next
    /// message it keeps), and the past messages kept for replay.
    nth: Nth,
    memory: VecDeque<(NodeId, M)>,
}

/// Applies the configured faults to messages. Holds each fault's random stream and whether
/// it is in its window; the control loop toggles windows with scheduled start and end events.
pub struct Injector<M> {
    faults: Vec<Injected<M>>,
    /// Per node: the faults that judge its outgoing and its incoming messages, in
    /// configuration order.
    outgoing: Vec<Vec<FaultId>>,
    incoming: Vec<Vec<FaultId>>,
    /// The same lists restricted to faults in their window, kept up to date as windows
    /// open and close, so that a message pays nothing for faults that are not active.
    outgoing_active: Vec<Vec<FaultId>>,
    incoming_active: Vec<Vec<FaultId>>,
}

impl<M: Message> Injector<M> {
    pub fn new(root_seed: u64, nodes: usize, faults: Vec<Fault>) -> Self {
        assert!(faults.len() < FaultId::MAX as usize, "more faults than a FaultId can name");
        let mut outgoing = vec![Vec::new(); nodes];
        let mut incoming = vec![Vec::new(); nodes];
        let faults = faults
            .into_iter()
            .enumerate()
            .map(|(i, fault)| {
                let id = i as FaultId;
                let node = fault.node.index();
                assert!(node < nodes, "fault {i} names node {node} of {nodes}");
                if fault.kind.judges_outgoing() {
                    outgoing[node].push(id);
                }
                if fault.kind.judges_incoming() {
                    incoming[node].push(id);
                }
                let sampler = match &fault.kind {
                    FaultKind::Delay { extra } | FaultKind::Reorder { extra, .. } | FaultKind::SlowDisk { extra } => {
                        Some(extra.sampler())
                    }
                    FaultKind::Gray { extra: Some(extra), .. } => Some(extra.sampler()),
                    _ => None,
                };
                let mut rng = stream(root_seed, Stream::Fault(i as u32));
                let coin = Coin::new(probability(&fault.kind), &mut rng);
                let nth = match fault.kind {
                    FaultKind::OmitEveryNth { n, .. } => Nth { n, left: n },
                    // The first message is kept, so a replay soon has something to replay.
                    FaultKind::Replay { .. } => Nth { n: REPLAY_STRIDE, left: 1 },
                    _ => Nth { n: u64::MAX, left: u64::MAX },
                };
                Injected { fault, rng, coin, sampler, active: false, fired: 0, nth, memory: VecDeque::new() }
            })
            .collect();
        Injector {
            faults,
            outgoing_active: vec![Vec::new(); nodes],
            incoming_active: vec![Vec::new(); nodes],
            outgoing,
            incoming,
        }
    }

    pub fn faults(&self) -> impl ExactSizeIterator<Item = &Fault> {
        self.faults.iter().map(|f| &f.fault)
    }

    pub fn fault(&self, id: FaultId) -> &Fault {
        &self.faults[id as usize].fault
    }

    /// How many times each fault acted (dropped, delayed, rewrote, held, stalled or crashed).
    pub fn fired(&self, id: FaultId) -> u64 {
        self.faults[id as usize].fired
    }

    pub fn is_active(&self, id: FaultId) -> bool {
        self.faults[id as usize].active
    }

    pub fn set_active(&mut self, id: FaultId, active: bool) {
        self.faults[id as usize].active = active;
        let node = self.faults[id as usize].fault.node.index();
        let faults = &self.faults;
        let keep = |ids: &Vec<FaultId>| ids.iter().copied().filter(|&i| faults[i as usize].active).collect();
        self.outgoing_active[node] = keep(&self.outgoing[node]);
        self.incoming_active[node] = keep(&self.incoming[node]);
    }

    pub fn note_fired(&mut self, id: FaultId) {
        self.faults[id as usize].fired += 1;
    }

    /// Draws a delay from the fault's own distribution (slow-disk's fsync latency).
    pub fn sample(&mut self, id: FaultId) -> u64 {
        let f = &mut self.faults[id as usize];
        f.sampler.as_ref().map_or(0, |s| s.sample(&mut f.rng))
    }

    /// Whether no fault in its window judges messages from `from` to `to`.
    #[inline(always)]
    pub fn is_quiet(&self, from: NodeId, to: NodeId) -> bool {
        self.outgoing_active[from.index()].is_empty() && self.incoming_active[to.index()].is_empty()
    }

    /// Decides the fate of `msg` from `from` to `to`, and pushes any extra messages the
    /// faults make the sender emit onto `extras`. Sender-side faults apply first, in
    /// configuration order, then receiver-side ones; the first drop wins, and a message
    /// that is dropped takes its duplicates and forgeries with it. Every coin is drawn from
    /// the deciding fault's own stream, at send time. Callers on a hot path check
    /// [`Injector::is_quiet`] first and skip the call when nothing would judge the message.
    #[inline]
    pub fn on_send(&mut self, from: NodeId, to: NodeId, msg: &mut M, extras: &mut Vec<Extra<M>>) -> Verdict {
        let before = extras.len();
        let verdict = self.judge(from, to, msg, extras);
        if !matches!(verdict, Verdict::Pass { .. }) {
            extras.truncate(before);
        }
        verdict
    }

    // Coin flips and counters advance state: as match guards they would hide side effects.
    #[allow(clippy::collapsible_match)]
    fn judge(&mut self, from: NodeId, to: NodeId, msg: &mut M, extras: &mut Vec<Extra<M>>) -> Verdict {
        let mut extra_ns = 0u64;
        let mut causes = Causes::default();
        let mut garbled = None;
        let Injector { faults, outgoing_active, incoming_active, .. } = self;
        // Each arm costs a coin or a comparison when it does not fire; what happens when it
        // does (count it, name it as a cause) is written out in the arm, off the common path.
        for &id in &outgoing_active[from.index()] {
            let f = &mut faults[id as usize];
            match &f.fault.kind {
                FaultKind::Omit { .. } => {
                    if f.coin.flip(&mut f.rng) {
                        f.fired += 1;
                        return Verdict::Drop(id);
                    }
                }
                FaultKind::OmitEveryNth { .. } => {
                    if f.nth.tick() {
                        f.fired += 1;
                        return Verdict::Drop(id);
                    }
                }
                FaultKind::OmitLarge { bytes, .. } => {
                    if msg.wire_size() > *bytes {
                        f.fired += 1;
                        return Verdict::Drop(id);
                    }
                }
                FaultKind::Partition { peers, direction, .. } => {
                    if direction.loses_outgoing() && peers.contains(&to) && f.coin.flip(&mut f.rng) {
                        f.fired += 1;
                        return Verdict::Drop(id);
                    }
                }
                FaultKind::Gray { .. } if msg.plane() == Plane::Data => {
                    if f.coin.flip(&mut f.rng) {
                        f.fired += 1;
                        return Verdict::Drop(id);
                    }
                    if let Some(s) = &f.sampler {
                        extra_ns = extra_ns.saturating_add(s.sample(&mut f.rng));
                        f.fired += 1;
                        causes.add(id);
                    }
                }
                FaultKind::Delay { .. } => {
                    let sampler = f.sampler.as_ref().expect("delay fault has a sampler");
                    extra_ns = extra_ns.saturating_add(sampler.sample(&mut f.rng));
                    f.fired += 1;
                    causes.add(id);
                }
                FaultKind::Reorder { .. } => {
                    if f.coin.flip(&mut f.rng) {
                        let sampler = f.sampler.as_ref().expect("reorder fault has a sampler");
                        extra_ns = extra_ns.saturating_add(sampler.sample(&mut f.rng));
                        f.fired += 1;
                        causes.add(id);
                    }
                }
                FaultKind::Tamper { .. } => {
                    if f.coin.flip(&mut f.rng) && msg.tamper(&mut f.rng) {
                        f.fired += 1;
                        causes.add(id);
                    }
                }
                FaultKind::Equivocate { .. } => {
                    if f.coin.flip(&mut f.rng) && msg.equivocate(to, &mut f.rng) {
                        f.fired += 1;
                        causes.add(id);
                    }
                }
                FaultKind::Flip { bits, .. } => {
                    if f.coin.flip(&mut f.rng)
                        && let Some(mut bytes) = msg.encode()
                        && !bytes.is_empty()
                    {
                        for _ in 0..*bits {
                            let bit = (f.rng.next_u64() % (bytes.len() as u64 * 8)) as usize;
                            bytes[bit / 8] ^= 1 << (bit % 8);
                        }
                        f.fired += 1;
                        match M::decode(&bytes) {
                            Some(corrupted) => *msg = corrupted,
                            // Garbage still travels: the receiver's own faults judge it below.
                            None => garbled = Some(id),
                        }
                        causes.add(id);
                    }
                }
                // A duplicate, replay or forgery is a message of its own: the original is
                // not caused by it, the extra is.
                FaultKind::Duplicate { .. } => {
                    if f.coin.flip(&mut f.rng) {
                        f.fired += 1;
                        extras.push(Extra { to, msg: msg.clone(), extra_ns: 0, causes: Causes::one(id) });
                    }
                }
                FaultKind::Replay { p } => {
                    if *p > 0.0 {
                        if f.coin.flip(&mut f.rng) && !f.memory.is_empty() {
                            let pick = (f.rng.next_u64() % f.memory.len() as u64) as usize;
                            let (old_to, old) = f.memory[pick].clone();
                            f.fired += 1;
                            extras.push(Extra { to: old_to, msg: old, extra_ns: 0, causes: Causes::one(id) });
                        }
                        // Remember every REPLAY_STRIDE-th message for later replays, keeping
                        // the most recent few: old messages from the last few hundred, at the
                        // cost of a counter per message rather than a copy.
                        if f.nth.tick() {
                            if f.memory.len() == REPLAY_MEMORY {
                                f.memory.pop_front();
                            }
                            f.memory.push_back((to, msg.clone()));
                        }
                    }
                }
                FaultKind::Forge { victim, .. } => {
                    if f.coin.flip(&mut f.rng)
                        && let Some(forged) = msg.forge(*victim, &mut f.rng)
                    {
                        f.fired += 1;
                        extras.push(Extra { to, msg: forged, extra_ns: 0, causes: Causes::one(id) });
                    }
                }
                _ => {}
            }
        }
        for &id in &incoming_active[to.index()] {
            let f = &mut faults[id as usize];
            let drop = match &f.fault.kind {
                FaultKind::Omit { .. } => f.coin.flip(&mut f.rng),
                FaultKind::OmitEveryNth { .. } => f.nth.tick(),
                FaultKind::OmitLarge { bytes, .. } => msg.wire_size() > *bytes,
                FaultKind::Partition { peers, direction, .. } => {
                    direction.loses_incoming() && peers.contains(&from) && f.coin.flip(&mut f.rng)
                }
                FaultKind::Gray { .. } if msg.plane() == Plane::Data => {
                    if f.coin.flip(&mut f.rng) {
                        true
                    } else {
                        if let Some(s) = &f.sampler {
                            extra_ns = extra_ns.saturating_add(s.sample(&mut f.rng));
                            f.fired += 1;
                            causes.add(id);
                        }
                        false
                    }
                }
                _ => false,
            };
            if drop {
                f.fired += 1;
                return Verdict::Drop(id);
            }
        }
        if let Some(id) = garbled {
            return Verdict::Garble(id);
        }
        for e in extras.iter_mut() {
            e.extra_ns = e.extra_ns.saturating_add(extra_ns);
        }
        Verdict::Pass { extra_ns, causes }
    }
}

/// One entry of the fault catalogue, as `faultline faults` lists it.
#[derive(Clone, Debug, Serialize)]
pub struct CatalogueEntry {
    pub name: &'static str,
    pub model: Model,
    /// Parameter names with units, as written in a scenario's fault entry (besides `node`,
    /// `kind`, `at_ms`, and the window `until_ms` / `duration_ms`).
    pub params: &'static [&'static str],
    pub summary: &'static str,
}

/// Every fault kind a scenario can name, without its parameters: the catalogue's rows. The
/// name, model, parameters and summary of each live in one place ([`FaultName::entry`]);
/// scenario files name kinds by [`FaultName::name`], and everything past parsing matches
/// on this enum, exhaustively.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultName {
    Crash,
    FailStop,
    Restart,
    HalfOpen,
    OmitSend,
    OmitReceive,
    OmitGeneral,
    OmitEveryNth,
    OmitLarge,
    Partition,
    Duplicate,
    Reorder,
    Delay,
    Pause,
    Skew,
    SlowDisk,
    Tamper,
    Equivocate,
    Replay,
    Stale,
    Lie,
    Flip,
    Forge,
    Gray,
}

impl FaultName {
    /// Every kind, in the catalogue's order (which swarm draws index into: keep it).
    pub const ALL: [FaultName; 24] = [
        FaultName::Crash,
        FaultName::FailStop,
        FaultName::Restart,
        FaultName::HalfOpen,
        FaultName::OmitSend,
        FaultName::OmitReceive,
        FaultName::OmitGeneral,
        FaultName::OmitEveryNth,
        FaultName::OmitLarge,
        FaultName::Partition,
        FaultName::Duplicate,
        FaultName::Reorder,
        FaultName::Delay,
        FaultName::Pause,
        FaultName::Skew,
        FaultName::SlowDisk,
        FaultName::Tamper,
        FaultName::Equivocate,
        FaultName::Replay,
        FaultName::Stale,
        FaultName::Lie,
        FaultName::Flip,
        FaultName::Forge,
        FaultName::Gray,
    ];

    /// The kind's catalogue entry.
    pub fn entry(self) -> CatalogueEntry {
        use FaultName::*;
        let e = |name, model, params, summary| CatalogueEntry { name, model, params, summary };
        match self {
            Crash => e(
                "crash",
                Model::Crash,
                &[],
                "crash-stop at at_ms: never handles or sends again; in-flight messages still arrive",
            ),
            FailStop => e(
                "fail-stop",
                Model::Crash,
                &[],
                "crash-stop that every other node is told of at once (on_peer_down): the idealisation",
            ),
            Restart => e(
                "restart",
                Model::Crash,
                &["duration_ms | until_ms (down time)"],
                "crash-recovery: down over the window, then rebuilt with only what it had fsynced",
            ),
            HalfOpen => e(
                "half-open",
                Model::Crash,
                &[],
                "transport alive, application dead: probes are answered, data messages swallowed, timers stop",
            ),
            OmitSend => e(
                "omit-send",
                Model::Omission,
                &["p (per message)"],
                "loses each message the node sends with probability p",
            ),
            OmitReceive => e(
                "omit-receive",
                Model::Omission,
                &["p (per message)"],
                "loses each message sent to the node with probability p",
            ),
            OmitGeneral => e(
                "omit-general",
                Model::Omission,
                &["p (per message)"],
                "loses the node's outgoing and incoming messages with probability p",
            ),
            OmitEveryNth => e(
                "omit-every-nth",
                Model::Omission,
                &["n (messages)", "direction (send|receive|general)"],
                "loses exactly every n-th message: the NIC firmware bug",
            ),
            OmitLarge => e(
                "omit-large",
                Model::Omission,
                &["bytes", "direction (send|receive|general)"],
                "loses messages larger than bytes on the wire while small ones (heartbeats) pass",
            ),
            Partition => e(
                "partition",
                Model::Omission,
                &["peers (node names)", "direction (send|receive|general)", "p (default 1)"],
                "cuts the links between the node and peers, one way or both, or makes them lossy",
            ),
            Duplicate => e(
                "duplicate",
                Model::Omission,
                &["p (per message)"],
                "delivers a second copy of a sent message with probability p",
            ),
            Reorder => e(
                "reorder",
                Model::Omission,
                &["p (per message)", "extra (latency distribution)"],
                "holds a message back by an extra delay with probability p, so later ones overtake it",
            ),
            Delay => e(
                "delay",
                Model::Timing,
                &["extra (latency distribution)"],
                "adds a delay drawn from extra to every message the node sends",
            ),
            Pause => e(
                "pause",
                Model::Timing,
                &["duration_ms | until_ms"],
                "stop-the-world: the node handles nothing, its timers wait, then it resumes with a stale view",
            ),
            Skew => e(
                "skew",
                Model::Timing,
                &["offset_ms", "drift_ppm"],
                "the node's clock is offset and drifts: its timers fire early or late",
            ),
            SlowDisk => e(
                "slow-disk",
                Model::Timing,
                &["extra (latency distribution)"],
                "every fsync takes a delay from extra and stalls the node meanwhile",
            ),
            Tamper => e(
                "tamper",
                Model::Byzantine,
                &["p (per message, default 1)"],
                "rewrites the content of the node's messages as the protocol allows",
            ),
            Equivocate => e(
                "equivocate",
                Model::Byzantine,
                &["p (per message, default 1)"],
                "sends different content to different peers",
            ),
            Replay => e(
                "replay",
                Model::Byzantine,
                &["p (per message)"],
                "re-sends one of its earlier messages alongside a new one",
            ),
            Stale => e(
                "stale",
                Model::Byzantine,
                &["age_ms"],
                "answers reads from state as it was age_ms ago while reporting success",
            ),
            Lie => {
                e("lie", Model::Byzantine, &[], "acks writes whose fsync silently did nothing: acked but not durable")
            }
            Flip => e(
                "flip",
                Model::Byzantine,
                &["p (per message)", "bits (default 1)"],
                "flips bits of the encoded message: undecodable ones are dropped as garbled, the rest are silently wrong",
            ),
            Forge => e(
                "forge",
                Model::Byzantine,
                &["victim (node name)", "p (per message, default 1)"],
                "also sends copies of its messages claiming victim sent them",
            ),
            Gray => e(
                "gray",
                Model::Gray,
                &["p (per data message)", "extra (latency distribution, optional)"],
                "data-plane messages lost or slow while health probes pass: observers disagree",
            ),
        }
    }

    /// The glossary word for the kind (docs/glossary.md), as scenarios write it.
    pub fn name(self) -> &'static str {
        self.entry().name
    }

    pub fn model(self) -> Model {
        self.entry().model
    }

    /// The kind a scenario's `kind = "..."` names; `None` for a name the catalogue lacks.
    pub fn parse(name: &str) -> Option<FaultName> {
        FaultName::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Every fault kind a scenario can name. docs/failure-models.md documents each in full.
pub fn catalogue() -> Vec<CatalogueEntry> {
    FaultName::ALL.into_iter().map(FaultName::entry).collect()
}

/// A fault as one line with every parameter: `#2 omit-receive @f1 p=0.400 from 0.000ms`.
/// The first three words are the label the trace uses as ground truth.
pub fn describe(id: usize, fault: &Fault, names: &[String]) -> String {
    use std::fmt::Write as _;
    let name = |n: &NodeId| names.get(n.index()).cloned().unwrap_or_else(|| n.to_string());
    let dist = |d: &LatencyDist| match d {
        LatencyDist::Constant(x) => format!("constant {x}"),
        LatencyDist::Uniform { min, max } => format!("uniform {min}..{max}"),
        LatencyDist::Normal { mean, stddev } => format!("normal mean {mean} sd {stddev}"),
        LatencyDist::LogNormal { median, sigma } => format!("lognormal median {median} sigma {sigma}"),
        LatencyDist::Pareto { scale, shape, cap } => format!("pareto scale {scale} shape {shape} cap {cap:?}"),
    };
    let dir = |d: &Direction| format!("{d:?}").to_lowercase();
    let mut s = format!("#{id} {} @{}", fault.kind.name(), name(&fault.node));
    let _ = match &fault.kind {
        FaultKind::Omit { p, .. }
        | FaultKind::Duplicate { p }
        | FaultKind::Tamper { p }
        | FaultKind::Equivocate { p }
        | FaultKind::Replay { p } => write!(s, " p={p:.3}"),
        FaultKind::OmitEveryNth { direction, n } => write!(s, " n={n} direction={}", dir(direction)),
        FaultKind::OmitLarge { direction, bytes } => write!(s, " bytes={bytes} direction={}", dir(direction)),
        FaultKind::Partition { peers, direction, p } => {
            let peers = peers.iter().map(name).collect::<Vec<_>>().join(",");
            let lossy = if *p < 1.0 { format!(" p={p:.3}") } else { String::new() };
            write!(s, " peers={peers} direction={}{lossy}", dir(direction))
        }
        FaultKind::Reorder { p, extra } => write!(s, " p={p:.3} extra={}", dist(extra)),
        FaultKind::Delay { extra } | FaultKind::SlowDisk { extra } => write!(s, " extra={}", dist(extra)),
        FaultKind::Skew { offset, drift_ppm } => {
            write!(s, " offset={:.3}ms drift={drift_ppm:.1}ppm", *offset as f64 / 1e6)
        }
        FaultKind::Stale { age } => write!(s, " age={age}"),
        FaultKind::Flip { p, bits } => write!(s, " p={p:.3} bits={bits}"),
        FaultKind::Forge { victim, p } => write!(s, " victim={} p={p:.3}", name(victim)),
        FaultKind::Gray { p, extra } => write!(s, " p={p:.3} extra={}", extra.as_ref().map_or("none".into(), dist)),
        FaultKind::Crash
        | FaultKind::FailStop
        | FaultKind::Restart
        | FaultKind::HalfOpen
        | FaultKind::Pause
        | FaultKind::Lie => Ok(()),
    };
    let _ = write!(s, " from {}", fault.start);
    if let Some(end) = fault.end {
        let _ = write!(s, " to {end}");
    }
    s
}

#[cfg(test)]
mod catalogue_tests {
    use super::*;

    #[test]
    fn every_name_parses_back_to_its_kind_and_names_are_unique() {
        for k in FaultName::ALL {
            assert_eq!(FaultName::parse(k.name()), Some(k));
        }
        let mut names: Vec<&str> = FaultName::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FaultName::ALL.len());
        assert_eq!(FaultName::parse("omit"), None, "omit is the scenario loader's alias, not a catalogue row");
        assert_eq!(FaultName::parse("bogus"), None);
    }

    #[test]
    fn every_kind_is_in_the_catalogue_under_its_own_name() {
        let names: Vec<&str> = catalogue().iter().map(|e| e.name).collect();
        let d = LatencyDist::Constant(Span::ZERO);
        let kinds = [
            FaultKind::Crash,
            FaultKind::FailStop,
            FaultKind::Restart,
            FaultKind::HalfOpen,
            FaultKind::Omit { direction: Direction::Send, p: 0.0 },
            FaultKind::Omit { direction: Direction::Receive, p: 0.0 },
            FaultKind::Omit { direction: Direction::General, p: 0.0 },
            FaultKind::OmitEveryNth { direction: Direction::Send, n: 1 },
            FaultKind::OmitLarge { direction: Direction::Send, bytes: 1 },
            FaultKind::Partition { peers: vec![], direction: Direction::General, p: 1.0 },
            FaultKind::Duplicate { p: 0.0 },
            FaultKind::Reorder { p: 0.0, extra: d.clone() },
            FaultKind::Delay { extra: d.clone() },
            FaultKind::Pause,
            FaultKind::Skew { offset: 0, drift_ppm: 0.0 },
            FaultKind::SlowDisk { extra: d },
            FaultKind::Tamper { p: 0.0 },
            FaultKind::Equivocate { p: 0.0 },
            FaultKind::Replay { p: 0.0 },
            FaultKind::Stale { age: Span::ZERO },
            FaultKind::Lie,
            FaultKind::Flip { p: 0.0, bits: 1 },
            FaultKind::Forge { victim: NodeId(0), p: 0.0 },
            FaultKind::Gray { p: 0.0, extra: None },
        ];
        assert_eq!(kinds.len(), names.len());
        for k in &kinds {
            let entry = catalogue().into_iter().find(|e| e.name == k.name()).expect("listed");
            assert_eq!(entry.model, k.model(), "{}", k.name());
        }
    }
}
