//! The deterministic discrete-event simulator: virtual [`time`], seeded [`rng`] streams,
//! the [`network`], each node's [`disk`], and the [`world`] that runs the control loop.

pub mod disk;
pub mod network;
pub mod rng;
pub mod time;
pub mod world;

pub use time::{Span, Time};
pub use world::{Limits, Observed, Sim, Stats, StopReason};
