//! Invariants evaluated over a run's observations.
//!
//! The coordinator's safety property is **agreement on the proposal**: a round the
//! coordinator calls agreed must have agreed on the value the leader proposed. A naive
//! majority quorum keeps it against crash, omission and timing faults, and against a
//! Byzantine minority whose tampered acks are outvoted; it loses it when tamperers are a
//! quorum, which is why the chapter asks for content quorums of 2f+1 out of 3f+1. A
//! violation is a result (exit code 1 and a `reproduce:` line), never a panic.

use serde::Serialize;

use crate::protocol::quorum::RoundResult;
use crate::sim::world::Observed;

/// A property that did not hold, with the first event that broke it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Violation {
    pub property: &'static str,
    pub round: u64,
    /// Virtual time of the violating event, in nanoseconds.
    pub t_ns: u64,
    pub detail: String,
}

/// Checks one round's outcome.
pub fn agreement_on_proposal(round: &Observed<RoundResult>) -> Option<Violation> {
    let r = &round.obs;
    match &r.winning_data {
        Some(won) if r.agreed && **won != *r.proposed => Some(Violation {
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
