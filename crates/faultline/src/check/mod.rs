//! Invariants evaluated over a run's observations.
//!
//! The coordinator's safety property is **agreement on the proposal**: a round the
//! coordinator calls agreed must have agreed on the value the leader proposed. A naive
//! majority quorum keeps it against crash, omission and timing faults, and against a
//! Byzantine minority whose tampered acks are outvoted; it loses it when tamperers are a
//! quorum, which is why the chapter asks for content quorums of 2f+1 out of 3f+1. A
//! violation is a result (exit code 1 and a `reproduce:` line), never a panic.
//!
//! **Acked implies durable** is the write-ahead rule: a follower whose ack was counted must
//! hold the append on its disk in a form that survives a crash. A `lie` fault (the chapter's
//! wallet-7, whose WAL stopped while its acks kept coming) breaks it without any message
//! looking wrong, so no coordinator can see it; the checker reads the followers' durable
//! disks, which only the simulator can. Reports count it per row (`acked_not_durable`)
//! rather than failing the run, so that the chapter's `lie` row shows the gap.

pub mod raft;

use std::rc::Rc;

use serde::Serialize;

use crate::protocol::NodeId;
use crate::protocols::quorum::RoundResult;
use crate::sim::world::Observed;

/// What a property promises, and so what its violation means (stateright's `always` and
/// `eventually`; TigerBeetle's simulator keeps the two failure classes apart the same way).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Safety: nothing bad ever happens. A violation is a bug the run proves (exit code 1).
    Always,
    /// Liveness: something good happens after the faults heal. A violation is a run that
    /// stopped making progress (exit code 3).
    Eventually,
}

impl Class {
    /// The class of the property named `property`: the liveness properties are listed
    /// beside their checkers; every other property is a safety property.
    pub fn of(property: &str) -> Class {
        if raft::LIVENESS.contains(&property) { Class::Eventually } else { Class::Always }
    }
}

/// A property that did not hold, with the first event that broke it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Violation {
    pub property: &'static str,
    pub round: u64,
    /// Virtual time of the violating event, in nanoseconds.
    pub t_ns: u64,
    pub detail: String,
}

impl Violation {
    /// The coordinator's properties are all safety properties.
    pub fn class(&self) -> Class {
        Class::of(self.property)
    }
}

/// Checks one round's outcome.
pub fn agreement_on_proposal(round: &Observed<RoundResult>) -> Option<Violation> {
    let r = &round.obs;
    match &r.winning_data {
        Some(won) if r.agreed && !Rc::ptr_eq(won, &r.proposed) && **won != *r.proposed => Some(Violation {
            property: "agreement-on-proposal",
            round: r.round,
            t_ns: round.time.as_nanos(),
            detail: format!(
                "round {} agreed on {:?} with {} of {} acks, but the leader proposed {:?}",
                r.round, won, r.winning_acks, r.followers, r.proposed
            ),
        }),
        _ => None,
    }
}

/// The followers whose ack `round` counted but whose durable disk does not hold that
/// round's append. `durable_round` reads a follower's disk and says the last round it made
/// durable ([`crate::protocols::quorum::durable_round`]). Check a round when it closes, as
/// reports do: a follower keeps one entry, overwritten round by round (so long runs keep
/// bounded disks), and a later durable write would hide an earlier lost one.
pub fn acked_not_durable(round: &RoundResult, durable_round: impl Fn(NodeId) -> Option<u64>) -> Vec<NodeId> {
    round.counted.iter().copied().filter(|&v| durable_round(v).is_none_or(|r| r < round.round)).collect()
}
