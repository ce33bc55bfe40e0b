//! The deterministic discrete-event simulator: the [`network`], each node's [`disk`], and
//! the [`world`] that runs the control loop. It depends on the leaf modules ([`crate::time`],
//! [`crate::rng`], [`crate::latency`]), the protocol interface ([`crate::protocol`]) and the
//! fault injector ([`crate::fault`]), never on a concrete protocol.
//!
//! `sim::time` and `sim::rng` name the leaf modules too, so that a user's `use` of the
//! simulator's clock and streams reads as it always did.

pub mod disk;
pub mod network;
pub mod world;

pub use crate::rng;
pub use crate::time;
pub use crate::time::{Span, Time};
pub use world::{Limits, NodeStatus, Observed, Sim, Stats, StopReason};
