//! The coordinator's properties, checked over a run's observations.
//!
//! **Agreement on the proposal** (always): a round the coordinator calls agreed must have
//! agreed on the value the leader proposed. A naive majority quorum keeps it against crash,
//! omission and timing faults, and against a Byzantine minority whose tampered acks are
//! outvoted; it loses it when tamperers are a quorum, which is why the chapter asks for
//! content quorums of 2f+1 out of 3f+1. A violation is a result (exit code 1 and a
//! `reproduce:` line), never a panic.
//!
//! **Acked implies durable** is the write-ahead rule: a follower whose ack was counted must
//! hold the append on its disk in a form that survives a crash. A `lie` fault (the chapter's
//! wallet-7, whose WAL stopped while its acks kept coming) breaks it without any message
//! looking wrong, so no coordinator can see it; the checker reads the followers' durable
//! disks, which only the simulator can. Reports count it per row (`acked_not_durable`)
//! rather than failing the run, so that the chapter's `lie` row shows the gap.

use std::rc::Rc;

use serde::ser::{Serialize, SerializeStruct, Serializer};

use super::RoundResult;
use crate::check::Violation;
use crate::protocol::NodeId;
use crate::sim::world::Observed;

/// A violation, and the round it broke in.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundViolation {
    pub round: u64,
    pub violation: Violation,
}

/// `{ property, round, t_ns, detail }`: the shape the coordinator's rows have had since
/// the chapter demo (scripts read it), kept when violations became one shared type.
impl Serialize for RoundViolation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Violation", 4)?;
        st.serialize_field("property", self.violation.property)?;
        st.serialize_field("round", &self.round)?;
        st.serialize_field("t_ns", &self.violation.t_ns)?;
        st.serialize_field("detail", &self.violation.detail)?;
        st.end()
    }
}

/// Checks one round's outcome.
pub fn agreement_on_proposal(round: &Observed<RoundResult>) -> Option<RoundViolation> {
    let r = &round.obs;
    match &r.winning_data {
        Some(won) if r.agreed && !Rc::ptr_eq(won, &r.proposed) && **won != *r.proposed => Some(RoundViolation {
            round: r.round,
            violation: Violation::always(
                "agreement-on-proposal",
                round.time,
                Some(round.node),
                format!(
                    "round {} agreed on {:?} with {} of {} acks, but the leader proposed {:?}",
                    r.round, won, r.winning_acks, r.followers, r.proposed
                ),
            ),
        }),
        _ => None,
    }
}

/// The followers whose ack `round` counted but whose durable disk does not hold that
/// round's append. `durable_round` reads a follower's disk and says the last round it made
/// durable ([`super::durable_round`]). Check a round when it closes, as reports do: a
/// follower keeps one entry, overwritten round by round (so long runs keep bounded disks),
/// and a later durable write would hide an earlier lost one.
pub fn acked_not_durable(round: &RoundResult, durable_round: impl Fn(NodeId) -> Option<u64>) -> Vec<NodeId> {
    round.counted.iter().copied().filter(|&v| durable_round(v).is_none_or(|r| r < round.round)).collect()
}
