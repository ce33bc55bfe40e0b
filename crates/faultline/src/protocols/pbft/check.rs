//! PBFT's properties, checked over a run's observations.
//!
//! Always (safety), over the correct replicas (those without a Byzantine fault and not
//! twinned; a crashed, partitioned or slow replica is still correct):
//! - `agreement`: no two correct replicas execute different requests at one sequence
//!   number (the null request counts as a request);
//! - `validity`: every request a correct replica executes is one a client sent;
//! - `linearizable`: the clients' history, through [`crate::linear`] (a register per key).
//!
//! Eventually (liveness): once the last fault has healed (or, for faults that never heal,
//! from when the last one struck), some client operation succeeds within the budget.

use std::collections::{BTreeMap, BTreeSet};

use super::wire::Op;
use super::{ClientResult, PbftObs};
use crate::check::Violation;
use crate::linear::{self, Budget, Call, History, ModelKind, Operation, Val, Verdict};
use crate::protocol::NodeId;
use crate::sim::world::Observed;
use crate::time::{Span, Time};

/// Every safety property, the most telling first. `correct` says which nodes' executions
/// count.
pub fn safety(obs: &[Observed<PbftObs>], correct: &dyn Fn(NodeId) -> bool, names: &[String]) -> Vec<Violation> {
    [agreement(obs, correct, names), validity(obs, correct, names), linearizable(obs)].into_iter().flatten().collect()
}

fn short(d: &[u8; 32]) -> String {
    if *d == [0; 32] {
        "the null request".to_owned()
    } else {
        format!("{:02x}{:02x}{:02x}{:02x}", d[0], d[1], d[2], d[3])
    }
}

/// Agreement: one request per sequence number among correct replicas.
pub fn agreement(obs: &[Observed<PbftObs>], correct: &dyn Fn(NodeId) -> bool, names: &[String]) -> Option<Violation> {
    let mut first: BTreeMap<u64, (NodeId, [u8; 32])> = BTreeMap::new();
    for o in obs {
        let PbftObs::Executed { seq, digest, .. } = &o.obs else { continue };
        if !correct(o.node) {
            continue;
        }
        match first.get(seq) {
            None => {
                first.insert(*seq, (o.node, *digest));
            }
            Some((other, d)) if d != digest => {
                let detail = format!(
                    "{} executed {} at sequence number {seq}, where {} executed {}",
                    names[o.node.index()],
                    short(digest),
                    names[other.index()],
                    short(d)
                );
                return Some(Violation::always("agreement", o.time, Some(o.node), detail));
            }
            Some(_) => {}
        }
    }
    None
}

/// Validity: executed requests are requests clients sent.
pub fn validity(obs: &[Observed<PbftObs>], correct: &dyn Fn(NodeId) -> bool, names: &[String]) -> Option<Violation> {
    let mut sent: BTreeSet<(u32, u64, OpKey)> = BTreeSet::new();
    for o in obs {
        match &o.obs {
            PbftObs::Invoke { client, ts, op } => {
                sent.insert((*client, *ts, OpKey::of(*op)));
            }
            PbftObs::Executed { seq, request: Some((client, ts, op)), .. }
                if correct(o.node) && !sent.contains(&(*client, *ts, OpKey::of(*op))) =>
            {
                let detail = format!(
                    "{} executed {op:?} as client {client}'s request {ts} at {seq}: no client sent it",
                    names[o.node.index()]
                );
                return Some(Violation::always("validity", o.time, Some(o.node), detail));
            }
            _ => {}
        }
    }
    None
}

/// An operation, ordered (for a set of them).
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct OpKey(u8, u32, u64);

impl OpKey {
    fn of(op: Op) -> OpKey {
        match op {
            Op::Write { key, value } => OpKey(0, key, value),
            Op::Read { key } => OpKey(1, key, 0),
        }
    }
}

const LINEAR_STEPS: u64 = 20_000_000;
const LINEAR_MEMO_BYTES: usize = 256 << 20;

/// The clients' history (a register per key), as Raft's: an unknown outcome is `:info`,
/// and its client goes on as a new process.
pub fn history(obs: &[Observed<PbftObs>]) -> (History, Vec<Time>) {
    let clients = obs
        .iter()
        .filter_map(|o| match o.obs {
            PbftObs::Invoke { client, .. } => Some(u64::from(client) + 1),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let mut unknowns: BTreeMap<u32, u64> = BTreeMap::new();
    let mut open: BTreeMap<(u32, u64), usize> = BTreeMap::new();
    let mut ops: Vec<Operation> = Vec::new();
    let mut at: Vec<Time> = Vec::new();
    for o in obs {
        match &o.obs {
            PbftObs::Invoke { client, ts, op } => {
                let process = u64::from(*client) + unknowns.get(client).copied().unwrap_or(0) * clients;
                let call = match *op {
                    Op::Write { value, .. } => Call::Write(Val::Int(value as i64)),
                    Op::Read { .. } => Call::Read,
                };
                let position = at.len() as u64;
                open.insert((*client, *ts), ops.len());
                ops.push(Operation {
                    process,
                    key: Some(Val::Int(i64::from(op.key()))),
                    call,
                    output: None,
                    invoke: position,
                    complete: None,
                    line: position + 1,
                    complete_line: None,
                });
                at.push(o.time);
            }
            PbftObs::Outcome { client, ts, result } => {
                let Some(i) = open.remove(&(*client, *ts)) else { continue };
                let position = at.len() as u64;
                at.push(o.time);
                let op = &mut ops[i];
                op.complete_line = Some(position + 1);
                match result {
                    ClientResult::Unknown => *unknowns.entry(*client).or_insert(0) += 1,
                    ClientResult::Ok { value } => {
                        op.complete = Some(position);
                        if op.call.is_read() {
                            op.output = Some(value.map_or(Val::Nil, |v| Val::Int(v as i64)));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let events = at.len() as u64;
    (History { ops, failed: 0, events }, at)
}

/// The clients' history is linearizable. A search that runs out of budget claims nothing.
pub fn linearizable(obs: &[Observed<PbftObs>]) -> Option<Violation> {
    let (history, at) = history(obs);
    let report = linear::check(&history, ModelKind::Register, &Budget::steps(LINEAR_STEPS, LINEAR_MEMO_BYTES), false);
    if report.verdict != Verdict::NotLinearizable {
        return None;
    }
    let c = report.counterexample?;
    let last = c.minimal.iter().map(|op| op.complete.unwrap_or(op.invoke)).max().unwrap_or(0);
    let time = at.get(last as usize).copied().unwrap_or(Time::ZERO);
    let key = c.key.as_ref().map_or_else(String::new, |k| format!("key {k}: "));
    let ops: Vec<String> = c.minimal.iter().map(|op| op.to_string()).collect();
    let detail = format!(
        "{key}no order consistent with real time explains these {} client operations: {}",
        c.minimal.len(),
        ops.join("; ")
    );
    Some(Violation::always("linearizable", time, None, detail))
}

/// Liveness: after `healed`, a client operation succeeds within `budget`. `None` when it
/// held, or when the run ended before the budget ran out (inconclusive).
pub fn eventually_replies(obs: &[Observed<PbftObs>], healed: Time, budget: Span, run_end: Time) -> Option<Violation> {
    let deadline = healed + budget;
    if run_end < deadline {
        return None;
    }
    // Nothing was asked after the heal, and nothing was waiting at it (clients done, or
    // none): nothing to answer.
    let mut waiting = std::collections::BTreeSet::new();
    let mut asked_after = false;
    for o in obs {
        match &o.obs {
            PbftObs::Invoke { client, ts, .. } if o.time < healed => {
                waiting.insert((*client, *ts));
            }
            PbftObs::Invoke { .. } => asked_after = true,
            PbftObs::Outcome { client, ts, .. } if o.time < healed => {
                waiting.remove(&(*client, *ts));
            }
            _ => {}
        }
    }
    if !asked_after && waiting.is_empty() {
        return None;
    }
    let progressed = obs.iter().any(|o| {
        o.time > healed
            && o.time <= deadline
            && matches!(o.obs, PbftObs::Outcome { result: ClientResult::Ok { .. }, .. })
    });
    if progressed {
        return None;
    }
    let detail = format!("no client operation succeeded within {budget:?} of the faults healing at {healed:?}");
    Some(Violation::eventually("eventually-replies", deadline, None, detail))
}
