//! The protocol interface: sans-IO state machines.
//!
//! A protocol is a state machine per node that reacts to three inputs (`on_start`,
//! `on_message`, `on_timer`) and emits effects (send, set or cancel a timer, persist,
//! observe) into a [`Context`]. It never reads a clock, draws randomness or touches a socket
//! except through that context, so the same code runs in the simulator, under a model
//! checker, or over a real network (stateright's `Actor`, raft-rs's `RawNode`).
//!
//! One protocol type serves every node of a run; nodes with different roles are variants of
//! one enum, as in stateright's examples (see [`crate::protocols::quorum`]).
//!
//! This module is the interface alone: it depends on the leaf modules ([`crate::time`],
//! [`crate::rng`]) and nothing else, so the simulator can depend on it without depending on
//! any concrete protocol ([`crate::protocols`]).

use std::fmt;

use crate::rng::SimRng;
use crate::time::{Span, Time};

/// A node's index in a run: `0..n`, stable for the whole run.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct NodeId(pub u32);

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// A timer handle, unique per node for the whole run.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId(pub u64);

/// Which plane a message travels on. Gray failure and half-open connections are failures
/// of the data plane that leave health probes answered (Huang et al., HotOS 2017).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Plane {
    /// Requests and replies that do the protocol's work.
    Data,
    /// Health checks and transport-level heartbeats.
    Probe,
}

/// What a protocol's messages must provide to the simulator. Every method but `Clone` and
/// `Debug` has a default; a protocol overrides the ones that give Byzantine faults
/// something to act on, and thereby declares what a faulty node may change.
pub trait Message: Clone + fmt::Debug {
    /// Bytes on the wire. Used by size-triggered omission (`omit-large`) and by cost
    /// figures; the default is the encoded length, or 0 for a protocol that does not encode.
    fn wire_size(&self) -> usize {
        self.encode().map_or(0, |b| b.len())
    }

    /// The plane the message travels on. Everything is data unless the protocol says so.
    fn plane(&self) -> Plane {
        Plane::Data
    }

    /// Rewrites the message as a Byzantine sender would, returning whether it changed
    /// anything. The default says nothing can be changed (the message passes untouched).
    fn tamper(&mut self, _rng: &mut SimRng) -> bool {
        false
    }

    /// Equivocation: rewrites the message for destination `to`, so that different peers
    /// receive different content. The default tampers with what goes to odd-numbered
    /// nodes and leaves the rest alone: two camps that disagree.
    fn equivocate(&mut self, to: NodeId, rng: &mut SimRng) -> bool {
        to.0 % 2 == 1 && self.tamper(rng)
    }

    /// A forged copy of this message claiming to come from `victim`, or `None` when the
    /// message carries no claim of identity (the default).
    fn forge(&self, _victim: NodeId, _rng: &mut SimRng) -> Option<Self> {
        None
    }

    /// The message as bytes, for bit-flip faults. `None` (the default) means the protocol
    /// does not encode, and a flip fault leaves its messages alone.
    fn encode(&self) -> Option<Vec<u8>> {
        None
    }

    /// Decodes bytes made by [`Message::encode`], possibly corrupted. `None` means they no
    /// longer decode: the receiver sees garbage and drops it.
    fn decode(_bytes: &[u8]) -> Option<Self> {
        None
    }
}

/// A sans-IO protocol. Handlers run to completion at one instant of virtual time; the
/// effects they emit apply in the order they are asked for, and none is visible to another
/// node before the handler returns (a send arrives later, through the network).
///
/// A protocol must be `Clone`: a node that restarts after a crash (crash-recovery) is
/// rebuilt from a copy of its initial state, keeps only what it had synced to its disk, and
/// runs `on_start` again, so recovery goes through the same code a fresh node runs.
pub trait Protocol: Clone {
    type Msg: Message;
    type Timer: Clone + fmt::Debug;
    /// What the protocol reports for checkers and reports (a round's outcome, a commit).
    type Obs: Clone + fmt::Debug;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>);
    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Self::Msg);
    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, id: TimerId, timer: Self::Timer);

    /// A peer failed and the failure was announced (fail-stop). Real systems rarely get
    /// this; the default ignores it, as a protocol that relies on timeouts would.
    fn on_peer_down(&mut self, _ctx: &mut Context<'_, Self>, _peer: NodeId) {}
}

/// What a handler's effects act on: the simulator's world, or a real network runtime.
pub trait Runtime<P: Protocol> {
    fn rng(&mut self, me: NodeId) -> &mut SimRng;
    fn send(&mut self, from: NodeId, to: NodeId, msg: P::Msg);
    fn set_timer(&mut self, me: NodeId, after: Span, timer: P::Timer) -> TimerId;
    fn cancel_timer(&mut self, me: NodeId, id: TimerId);
    fn observe(&mut self, me: NodeId, obs: P::Obs);
    /// Buffers a write; it survives a crash only once synced.
    fn write(&mut self, me: NodeId, key: &str, value: Vec<u8>);
    /// Makes buffered writes durable. Takes disk time; a slow disk stalls the node.
    fn fsync(&mut self, me: NodeId);
    fn read(&mut self, me: NodeId, key: &str) -> Option<Vec<u8>>;
    /// How stale this node's answers are, when a `stale` fault says so (see [`Context::stale`]).
    fn stale(&mut self, me: NodeId) -> Option<Span>;
}

/// Everything a handler may touch: its identity, its clock, its random stream, its disk,
/// and the effects it emits (send, set or cancel a timer, persist, observe). The simulator
/// builds one per handler call over its world; a real-network runtime would build the same
/// over its own clock, RNG, sockets and storage.
pub struct Context<'a, P: Protocol> {
    me: NodeId,
    now: Time,
    rt: &'a mut dyn Runtime<P>,
    /// False when the runtime knows no `stale` fault holds the node for this handler, so
    /// [`Context::stale`] answers without a call (the simulator knows; others ask).
    may_be_stale: bool,
}

impl<'a, P: Protocol> Context<'a, P> {
    /// `now` is the node's own clock reading, which a skewed node gets wrong.
    pub fn new(me: NodeId, now: Time, rt: &'a mut dyn Runtime<P>) -> Self {
        Context { me, now, rt, may_be_stale: true }
    }

    /// The simulator's constructor: it knows whether a `stale` fault holds the node.
    pub(crate) fn in_sim(me: NodeId, now: Time, rt: &'a mut dyn Runtime<P>, may_be_stale: bool) -> Self {
        Context { me, now, rt, may_be_stale }
    }

    /// This node's id.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// The node's clock. In the simulator, virtual time as this node sees it: a `skew`
    /// fault offsets it and makes it drift.
    pub fn now(&self) -> Time {
        self.now
    }

    /// The node's own random stream: the only randomness a protocol may use.
    pub fn rng(&mut self) -> &mut SimRng {
        self.rt.rng(self.me)
    }

    /// Sends `msg` to `to`. Whether, when and in what shape it arrives is the network's and
    /// the fault injector's business.
    pub fn send(&mut self, to: NodeId, msg: P::Msg) {
        self.rt.send(self.me, to, msg);
    }

    /// Fires `timer` after `after` of this node's time, unless cancelled first.
    pub fn set_timer(&mut self, after: Span, timer: P::Timer) -> TimerId {
        self.rt.set_timer(self.me, after, timer)
    }

    /// Cancels a timer. Cancelling one that already fired or was cancelled is harmless.
    pub fn cancel_timer(&mut self, id: TimerId) {
        self.rt.cancel_timer(self.me, id);
    }

    /// Buffers a write to the node's simulated disk. Reads see it at once; a crash loses it
    /// unless [`Context::fsync`] ran after it.
    pub fn write(&mut self, key: &str, value: Vec<u8>) {
        self.rt.write(self.me, key, value);
    }

    /// Makes every buffered write durable. Under a `slow-disk` fault the node stalls for
    /// the disk's latency: what it sends afterwards in this handler leaves that much later.
    /// Under a `lie` fault the writes are silently dropped and the call returns as usual.
    pub fn fsync(&mut self) {
        self.rt.fsync(self.me);
    }

    /// Writes and syncs in one call.
    pub fn persist(&mut self, key: &str, value: Vec<u8>) {
        self.write(key, value);
        self.fsync();
    }

    /// Reads what the node last wrote under `key` (synced or not).
    pub fn read(&mut self, key: &str) -> Option<Vec<u8>> {
        self.rt.read(self.me, key)
    }

    /// `Some(age)` while a `stale` fault holds this node: it should answer reads from its
    /// state as it was `age` ago while reporting success (the chapter's wallet-5). How a
    /// protocol does that is its own business, like what a tamperer may change.
    pub fn stale(&mut self) -> Option<Span> {
        if !self.may_be_stale {
            return None;
        }
        self.rt.stale(self.me)
    }

    /// Reports an observation to checkers and reports.
    pub fn observe(&mut self, obs: P::Obs) {
        self.rt.observe(self.me, obs);
    }
}
