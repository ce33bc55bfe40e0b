//! The observers, as nodes and messages of the simulation itself: every replica is wrapped
//! so that, while it leads, it notes when it last heard each peer and how long each peer
//! took to answer it (the leader's view), and so that it answers a load balancer's health
//! probe and a client's read probe; one more node, the monitor, sends those probes to
//! every replica at a fixed interval. Probes travel the simulated network like everything
//! else, so faults act on them as they would on real probes: a crashed replica answers
//! nothing, a half-open one answers health probes only (they travel the probe plane), a
//! paused one answers late, a gray one loses reads, a stale one serves old data, a
//! Byzantine one tampers with what it serves.

use std::collections::VecDeque;

use rand::Rng as _;

use crate::protocol::{Context, Message, NodeId, Plane, Protocol, Runtime, TimerId};
use crate::rng::SimRng;
use crate::sim::disk::Disk;
use crate::time::{Span, Time};

/// What a protocol's nodes tell the observers. Implemented by the workloads that derive
/// signals (Raft, the quorum coordinator).
pub trait Monitorable: Protocol {
    /// Whether the monitors watch this node (Raft's clients, say, are not replicas).
    fn is_replica(&self) -> bool;
    /// Whether this node leads now (its view of its peers is the leader's view).
    fn leads(&self) -> bool;
    /// As leader: the highest log index `peer` has acknowledged.
    fn acked_index(&self, peer: NodeId) -> Option<u64>;
    /// As leader: its commit index.
    fn commit_index(&self) -> Option<u64>;
    /// The version of the state this node serves reads from (its applied index).
    fn served_version(&self) -> u64;
    /// What an audit of the node's disk finds: the highest index durably in its log, or
    /// `None` when the node keeps no log on disk (there is nothing to audit).
    fn durable_index(&self, disk: &Disk) -> Option<u64>;
}

/// A probe's key changes value every this many versions; its digest with it. Replicas a
/// few entries apart still serve the same value, as a rarely written probe key would.
pub const DIGEST_EVERY: u64 = 64;

/// The digest of the probe key's value at `version`: what a correct replica serves.
pub fn digest(version: u64) -> u64 {
    // SplitMix64's finaliser: a fixed, well-mixed function of the value's epoch.
    let mut z = (version / DIGEST_EVERY).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A message of the monitored system: the protocol's own, or a probe and its answer.
#[derive(Clone, Debug)]
pub enum MonMsg<M> {
    Inner(M),
    Health(u64),
    HealthOk(u64),
    Read(u64),
    ReadOk { seq: u64, version: u64, digest: u64 },
}

impl<M: Message> Message for MonMsg<M> {
    fn wire_size(&self) -> usize {
        match self {
            MonMsg::Inner(m) => m.wire_size(),
            MonMsg::ReadOk { .. } => 25,
            _ => 9,
        }
    }

    fn plane(&self) -> Plane {
        match self {
            MonMsg::Inner(m) => m.plane(),
            MonMsg::Health(_) | MonMsg::HealthOk(_) => Plane::Probe,
            MonMsg::Read(_) | MonMsg::ReadOk { .. } => Plane::Data,
        }
    }

    fn tamper(&mut self, rng: &mut SimRng) -> bool {
        match self {
            MonMsg::Inner(m) => m.tamper(rng),
            MonMsg::ReadOk { digest, .. } => {
                *digest ^= rng.next_u64() | 1;
                true
            }
            _ => false,
        }
    }

    fn equivocate(&mut self, to: NodeId, rng: &mut SimRng) -> bool {
        match self {
            MonMsg::Inner(m) => m.equivocate(to, rng),
            // The monitor is one asker; an equivocating replica answers it one way or the
            // other, read by read.
            MonMsg::ReadOk { digest, .. } if rng.next_u64().is_multiple_of(2) => {
                *digest ^= rng.next_u64() | 1;
                true
            }
            _ => false,
        }
    }

    fn forge(&self, victim: NodeId, rng: &mut SimRng) -> Option<Self> {
        match self {
            MonMsg::Inner(m) => m.forge(victim, rng).map(MonMsg::Inner),
            _ => None,
        }
    }

    fn encode(&self) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(25);
        match self {
            MonMsg::Inner(m) => {
                out.push(0);
                out.extend(m.encode()?);
            }
            MonMsg::Health(s) | MonMsg::HealthOk(s) | MonMsg::Read(s) => {
                out.push(match self {
                    MonMsg::Health(_) => 1,
                    MonMsg::HealthOk(_) => 2,
                    _ => 3,
                });
                out.extend(s.to_le_bytes());
            }
            MonMsg::ReadOk { seq, version, digest } => {
                out.push(4);
                for x in [seq, version, digest] {
                    out.extend(x.to_le_bytes());
                }
            }
        }
        Some(out)
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let (&tag, rest) = bytes.split_first()?;
        let word = |i: usize| rest.get(i * 8..i * 8 + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
        match tag {
            0 => M::decode(rest).map(MonMsg::Inner),
            1 if rest.len() == 8 => Some(MonMsg::Health(word(0)?)),
            2 if rest.len() == 8 => Some(MonMsg::HealthOk(word(0)?)),
            3 if rest.len() == 8 => Some(MonMsg::Read(word(0)?)),
            4 if rest.len() == 24 => Some(MonMsg::ReadOk { seq: word(0)?, version: word(1)?, digest: word(2)? }),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub enum MonTimer<T> {
    Inner(T),
    Probe,
}

/// A replica's bookkeeping as seen by the observers.
#[derive(Clone, Debug, Default)]
pub struct Watch {
    /// While leading: when it last heard each peer, and since when a message to it has
    /// gone unanswered.
    pub last_heard: Vec<Option<Time>>,
    unanswered_since: Vec<Option<Time>>,
    /// While leading: each peer's last answer time, in nanoseconds.
    pub answer_ns: Vec<Option<u64>>,
    was_leading: bool,
    /// The versions it served and from when, most recent last: what a stale read serves.
    versions: VecDeque<(Time, u64)>,
}

const VERSIONS_KEPT: usize = 4096;

impl Watch {
    fn as_of(&self, at: Option<Time>) -> u64 {
        let Some(at) = at else { return self.versions.back().map_or(0, |&(_, v)| v) };
        self.versions.iter().rev().find(|(t, _)| *t <= at).map_or(0, |&(_, v)| v)
    }
}

/// A probe's last outcome.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Outcome {
    Ok { latency: Span, version: u64, digest: u64 },
    Failed,
}

#[derive(Clone, Debug, Default)]
pub struct Probes {
    /// Per replica: the probes outstanding (sequence number, when sent), oldest first, and
    /// the outcome of the last one resolved (answered, or timed out).
    pub sent: Vec<VecDeque<(u64, Time)>>,
    pub last: Vec<Option<Outcome>>,
}

impl Probes {
    fn new(n: usize) -> Probes {
        Probes { sent: vec![VecDeque::new(); n], last: vec![None; n] }
    }

    /// A probe not answered within `timeout` failed.
    fn expire(&mut self, r: usize, now: Time, timeout: Span) {
        while let Some(&(_, at)) = self.sent[r].front() {
            if now.since(at) < timeout {
                break;
            }
            self.sent[r].pop_front();
            self.last[r] = Some(Outcome::Failed);
        }
    }

    fn answered(&mut self, r: usize, seq: u64, now: Time, version: u64, digest: u64) {
        if let Some(i) = self.sent[r].iter().position(|&(s, _)| s == seq) {
            let (_, at) = self.sent[r].remove(i).expect("found");
            self.last[r] = Some(Outcome::Ok { latency: now.since(at), version, digest });
        }
    }
}

/// How long a probe may take before it counts as failed: a load balancer's or a
/// client's timeout, in probe intervals.
pub const PROBE_TIMEOUT_INTERVALS: u64 = 10;

/// The monitor node: a load balancer's health checker and a client's read prober.
#[derive(Clone, Debug)]
pub struct Monitor {
    pub replicas: Vec<NodeId>,
    pub interval: Span,
    seq: u64,
    pub health: Probes,
    pub reads: Probes,
}

/// A node of the monitored system.
#[derive(Clone)]
pub enum Mon<P> {
    Node(P, Watch),
    Monitor(Monitor),
}

impl<P: Monitorable> Mon<P> {
    /// Wraps `nodes` and adds the monitor (the last node), probing every replica each
    /// `interval`.
    pub fn wrap(nodes: Vec<P>, interval: Span) -> Vec<Mon<P>> {
        let n = nodes.len();
        let replicas: Vec<NodeId> =
            nodes.iter().enumerate().filter(|(_, p)| p.is_replica()).map(|(i, _)| NodeId(i as u32)).collect();
        let watch = Watch {
            last_heard: vec![None; n],
            unanswered_since: vec![None; n],
            answer_ns: vec![None; n],
            ..Watch::default()
        };
        let r = replicas.len();
        let monitor = Monitor { replicas, interval, seq: 0, health: Probes::new(r), reads: Probes::new(r) };
        nodes.into_iter().map(|p| Mon::Node(p, watch.clone())).chain(std::iter::once(Mon::Monitor(monitor))).collect()
    }

    pub fn inner(&self) -> Option<&P> {
        match self {
            Mon::Node(p, _) => Some(p),
            Mon::Monitor(_) => None,
        }
    }

    pub fn watch(&self) -> Option<&Watch> {
        match self {
            Mon::Node(_, w) => Some(w),
            Mon::Monitor(_) => None,
        }
    }

    pub fn monitor(&self) -> Option<&Monitor> {
        match self {
            Mon::Monitor(m) => Some(m),
            Mon::Node(..) => None,
        }
    }
}

/// The inner protocol's runtime: its effects, passed through the outer context with its
/// messages and timers wrapped, and its sends timed while it leads.
struct Adapt<'c, 'a, P: Monitorable> {
    outer: &'c mut Context<'a, Mon<P>>,
    watch: &'c mut Watch,
    leading: bool,
}

impl<P: Monitorable> Runtime<P> for Adapt<'_, '_, P> {
    fn rng(&mut self, _me: NodeId) -> &mut SimRng {
        self.outer.rng()
    }
    fn send(&mut self, _from: NodeId, to: NodeId, msg: P::Msg) {
        if self.leading {
            let now = self.outer.now();
            self.watch.unanswered_since.get_mut(to.index()).map(|s| s.get_or_insert(now));
        }
        self.outer.send(to, MonMsg::Inner(msg));
    }
    fn set_timer(&mut self, _me: NodeId, after: Span, timer: P::Timer) -> TimerId {
        self.outer.set_timer(after, MonTimer::Inner(timer))
    }
    fn cancel_timer(&mut self, _me: NodeId, id: TimerId) {
        self.outer.cancel_timer(id);
    }
    fn observe(&mut self, _me: NodeId, obs: P::Obs) {
        self.outer.observe(obs);
    }
    fn write(&mut self, _me: NodeId, key: &str, value: Vec<u8>) {
        self.outer.write(key, value);
    }
    fn fsync(&mut self, _me: NodeId) {
        self.outer.fsync();
    }
    fn read(&mut self, _me: NodeId, key: &str) -> Option<Vec<u8>> {
        self.outer.read(key)
    }
    fn stale(&mut self, _me: NodeId) -> Option<Span> {
        self.outer.stale()
    }
}

/// Runs one handler of the inner protocol, then notes a change of leadership and of the
/// served version.
fn inner<P: Monitorable>(
    p: &mut P,
    watch: &mut Watch,
    ctx: &mut Context<'_, Mon<P>>,
    f: impl FnOnce(&mut P, &mut Context<'_, P>),
) {
    let (me, now) = (ctx.me(), ctx.now());
    let leading = p.leads();
    {
        let mut rt = Adapt { outer: ctx, watch, leading };
        let mut inner_ctx = Context::new(me, now, &mut rt);
        f(p, &mut inner_ctx);
    }
    let leads = p.leads();
    if leads && !watch.was_leading {
        // A new leader has heard nobody yet as leader: until it does, it has no heartbeat
        // age to report (what it heard as a follower is not a leader's view).
        watch.last_heard.iter_mut().for_each(|h| *h = None);
        watch.unanswered_since.iter_mut().for_each(|s| *s = None);
        watch.answer_ns.iter_mut().for_each(|a| *a = None);
    }
    watch.was_leading = leads;
    let v = p.served_version();
    if watch.versions.back().is_none_or(|&(_, last)| last != v) {
        if watch.versions.len() == VERSIONS_KEPT {
            watch.versions.pop_front();
        }
        watch.versions.push_back((now, v));
    }
}

impl<P: Monitorable> Protocol for Mon<P> {
    type Msg = MonMsg<P::Msg>;
    type Timer = MonTimer<P::Timer>;
    type Obs = P::Obs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        match self {
            Mon::Node(p, w) => inner(p, w, ctx, |p, c| p.on_start(c)),
            Mon::Monitor(m) => {
                ctx.set_timer(m.interval, MonTimer::Probe);
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Self::Msg) {
        match self {
            Mon::Node(p, w) => match msg {
                MonMsg::Inner(m) => {
                    if p.leads() {
                        let now = ctx.now();
                        let i = from.index();
                        if let Some(h) = w.last_heard.get_mut(i) {
                            *h = Some(now);
                        }
                        if let Some(since) = w.unanswered_since.get_mut(i).and_then(Option::take) {
                            w.answer_ns[i] = Some(now.since(since).as_nanos());
                        }
                    }
                    inner(p, w, ctx, |p, c| p.on_message(c, from, m));
                }
                MonMsg::Health(seq) => ctx.send(from, MonMsg::HealthOk(seq)),
                MonMsg::Read(seq) => {
                    // A stale node serves what it held `age` ago, and says it is current.
                    let at = ctx.stale().and_then(|age| ctx.now().as_nanos().checked_sub(age.as_nanos()));
                    let version = match at {
                        Some(ns) => w.as_of(Some(Time::ZERO + Span::from_nanos(ns))),
                        None => w.as_of(None),
                    };
                    ctx.send(from, MonMsg::ReadOk { seq, version, digest: digest(version) });
                }
                _ => {}
            },
            Mon::Monitor(m) => {
                let Some(r) = m.replicas.iter().position(|&x| x == from) else { return };
                let now = ctx.now();
                match msg {
                    MonMsg::HealthOk(seq) => m.health.answered(r, seq, now, 0, 0),
                    MonMsg::ReadOk { seq, version, digest } => m.reads.answered(r, seq, now, version, digest),
                    _ => {}
                }
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, id: TimerId, timer: Self::Timer) {
        match (self, timer) {
            (Mon::Node(p, w), MonTimer::Inner(t)) => inner(p, w, ctx, |p, c| p.on_timer(c, id, t)),
            (Mon::Monitor(m), MonTimer::Probe) => {
                m.seq += 1;
                let now = ctx.now();
                let timeout = Span::from_nanos(m.interval.as_nanos() * PROBE_TIMEOUT_INTERVALS);
                for r in 0..m.replicas.len() {
                    m.health.expire(r, now, timeout);
                    m.reads.expire(r, now, timeout);
                    m.health.sent[r].push_back((m.seq, now));
                    m.reads.sent[r].push_back((m.seq, now));
                    ctx.send(m.replicas[r], MonMsg::Health(m.seq));
                    ctx.send(m.replicas[r], MonMsg::Read(m.seq));
                }
                ctx.set_timer(m.interval, MonTimer::Probe);
            }
            _ => {}
        }
    }

    fn on_peer_down(&mut self, ctx: &mut Context<'_, Self>, peer: NodeId) {
        if let Mon::Node(p, w) = self {
            inner(p, w, ctx, |p, c| p.on_peer_down(c, peer));
        }
    }
}
