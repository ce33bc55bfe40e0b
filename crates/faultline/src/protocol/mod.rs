//! The protocol interface: sans-IO state machines.
//!
//! A protocol is a state machine per node that reacts to three inputs (`on_start`,
//! `on_message`, `on_timer`) and emits effects (send, set or cancel a timer, persist,
//! observe) into a [`Context`]. It never reads a clock, draws randomness or touches a socket
//! except through that context, so the same code runs in the simulator, under a model
//! checker, or over a real network (stateright's `Actor`, raft-rs's `RawNode`).
//!
//! One protocol type serves every node of a run; nodes with different roles are variants of
//! one enum, as in stateright's examples (see [`quorum`]).

pub mod quorum;

use std::fmt;

use crate::sim::disk::Disk;
use crate::sim::rng::SimRng;
use crate::sim::time::{Span, Time};

/// A node's index in a run: `0..n`, stable for the whole run.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

/// What a protocol's messages must provide to the simulator.
pub trait Message: Clone + fmt::Debug {
    /// Bytes on the wire. Used by size-triggered faults and by cost figures; a protocol that
    /// does not care may leave the default.
    fn wire_size(&self) -> usize {
        0
    }

    /// Rewrites the message as a Byzantine sender would, returning whether it changed
    /// anything. This is where a protocol declares what a tamperer may change: the
    /// default says nothing can be (the message passes untouched).
    fn tamper(&mut self, _rng: &mut SimRng) -> bool {
        false
    }
}

/// A sans-IO protocol. Handlers run to completion at one instant of virtual time; the
/// effects they emit apply in the order they are asked for, and none is visible to another
/// node before the handler returns (a send arrives later, through the network).
pub trait Protocol {
    type Msg: Message;
    type Timer: Clone + fmt::Debug;
    /// What the protocol reports for checkers and reports (a round's outcome, a commit).
    type Obs: Clone + fmt::Debug;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>);
    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Self::Msg);
    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, id: TimerId, timer: Self::Timer);
}

/// What a handler's effects act on: the simulator's world, or a real network runtime.
/// Effects apply in the order the handler asks for them; nothing a handler does is seen
/// by another node before the handler returns, because every send goes through the
/// network and arrives later.
pub trait Runtime<P: Protocol + ?Sized> {
    fn rng(&mut self, me: NodeId) -> &mut SimRng;
    fn disk(&mut self, me: NodeId) -> &mut Disk;
    fn send(&mut self, from: NodeId, to: NodeId, msg: P::Msg);
    fn set_timer(&mut self, me: NodeId, after: Span, timer: P::Timer) -> TimerId;
    fn cancel_timer(&mut self, me: NodeId, id: TimerId);
    fn observe(&mut self, me: NodeId, obs: P::Obs);
}

/// Everything a handler may touch: its identity, its clock, its random stream, its disk,
/// and the effects it emits (send, set or cancel a timer, persist, observe). The simulator
/// builds one per handler call over its world; a real-network runtime would build the same
/// over its own clock, RNG, sockets and storage.
pub struct Context<'a, P: Protocol + ?Sized> {
    me: NodeId,
    now: Time,
    rt: &'a mut dyn Runtime<P>,
}

impl<'a, P: Protocol + ?Sized> Context<'a, P> {
    pub fn new(me: NodeId, now: Time, rt: &'a mut dyn Runtime<P>) -> Self {
        Context { me, now, rt }
    }

    /// This node's id.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// The node's clock. In the simulator, virtual time as this node sees it.
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

    /// Writes `value` under `key` to the node's simulated disk, durably: it survives a
    /// crash of the node. (Write latency and lost unsynced writes are faults, not defaults.)
    pub fn persist(&mut self, key: &str, value: Vec<u8>) {
        self.rt.disk(self.me).write(key, value);
    }

    /// Reads what the node last persisted under `key`.
    pub fn read(&mut self, key: &str) -> Option<Vec<u8>> {
        self.rt.disk(self.me).read(key).map(<[u8]>::to_vec)
    }

    /// Reports an observation to checkers and reports.
    pub fn observe(&mut self, obs: P::Obs) {
        self.rt.observe(self.me, obs);
    }
}
