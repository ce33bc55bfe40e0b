//! Raft's safety and liveness properties, checked over a run's observations and the
//! servers' final durable logs. Every checker returns the first violating event, so a
//! report can name the property, the virtual time and the node, and a `reproduce:` line
//! replays it.
//!
//! Always (safety), after Ongaro and Ousterhout (2014), Figure 3, plus what a client sees:
//! - **election safety**: at most one leader per term;
//! - **log matching**: two final logs that hold an entry with the same index and term are
//!   identical up to it;
//! - **state-machine safety**: no two servers apply different commands at one index;
//! - **leader completeness**: a leader's log, when it is elected, holds every entry applied
//!   anywhere before;
//! - **durability**: every write a client was told succeeded is in the final committed log;
//! - **no stale confirmation**: no operation is confirmed to a client by a leader whose
//!   term had already been superseded by another leader's election (the split brain of
//!   the chapter's KapitalKite incident);
//! - **linearizable reads**: a read returns the value of a write that was applied, and no
//!   write to that key that completed before the read began is ordered after it (the log
//!   order of writes is the linearization; reads are checked against it);
//! - **linearizable**: the clients' whole history (writes and reads, with the outcomes the
//!   clients saw: a timeout may or may not have happened) has one order, consistent with
//!   real time, that a register per key allows; the general checker of `crate::linear`,
//!   which needs neither the log nor any server's word, only what clients saw.
//!
//! Eventually (liveness): once the last fault has healed, a leader is elected and a new
//! write commits within a stated budget.

use std::collections::BTreeMap;

use super::{ClientResult, Command, LogEntry, Op, RaftObs};
use crate::check::Violation;
use crate::linear::{self, Budget, History, ModelKind, Operation, Val, Verdict};
use crate::protocol::NodeId;
use crate::sim::world::Observed;
use crate::time::{Span, Time};

/// A safety property broken at `at` by `node`'s event.
fn violation(property: &'static str, at: Time, node: NodeId, detail: String) -> Violation {
    Violation::always(property, at, Some(node), detail)
}

/// Every safety property, in the order above; each gives its first violation, if any.
pub fn safety(obs: &[Observed<RaftObs>], final_logs: &[Vec<LogEntry>]) -> Vec<Violation> {
    let mut found: Vec<Violation> = [
        election_safety(obs),
        log_matching(final_logs),
        state_machine_safety(obs),
        leader_completeness(obs),
        durability(obs, final_logs),
        no_stale_confirmation(obs),
        linearizable_reads(obs),
        linearizable(obs),
    ]
    .into_iter()
    .flatten()
    .collect();
    // The earliest first: it is the one a reader should look at. (Log matching, which
    // looks at the final logs, carries time 0 and so comes first when it fails.)
    found.sort_by_key(|v| v.t_ns);
    found
}

pub fn election_safety(obs: &[Observed<RaftObs>]) -> Option<Violation> {
    let mut leaders: BTreeMap<u64, NodeId> = BTreeMap::new();
    for o in obs {
        let RaftObs::Leader { term, .. } = &o.obs else { continue };
        match leaders.get(term) {
            Some(&first) if first != o.node => {
                let detail = format!("s{} became leader of term {term}, which s{} already leads", o.node.0, first.0);
                return Some(violation("election-safety", o.time, o.node, detail));
            }
            Some(_) => {}
            None => {
                leaders.insert(*term, o.node);
            }
        }
    }
    None
}

pub fn log_matching(final_logs: &[Vec<LogEntry>]) -> Option<Violation> {
    for (a, la) in final_logs.iter().enumerate() {
        for (b, lb) in final_logs.iter().enumerate().skip(a + 1) {
            // The last index at which both hold an entry of the same term...
            let Some(last) = (0..la.len().min(lb.len())).rev().find(|&i| la[i].term == lb[i].term) else {
                continue;
            };
            // ...must be preceded by identical entries.
            if let Some(i) = (0..=last).find(|&i| la[i] != lb[i]) {
                let detail = format!(
                    "s{a} and s{b} both hold index {} from term {}, but differ at index {}: {:?} vs {:?}",
                    last + 1,
                    la[last].term,
                    i + 1,
                    la[i],
                    lb[i]
                );
                return Some(violation("log-matching", Time::ZERO, NodeId(a as u32), detail));
            }
        }
    }
    None
}

pub fn state_machine_safety(obs: &[Observed<RaftObs>]) -> Option<Violation> {
    let mut applied: BTreeMap<u64, (u64, &Command, NodeId)> = BTreeMap::new();
    for o in obs {
        if let RaftObs::Applied { index, term, cmd } = &o.obs {
            match applied.get(index) {
                Some(&(t, c, by)) if (t, c) != (*term, cmd) => {
                    let detail = format!(
                        "s{} applied {cmd:?} (term {term}) at index {index}, where s{} applied {c:?} (term {t})",
                        o.node.0, by.0
                    );
                    return Some(violation("state-machine-safety", o.time, o.node, detail));
                }
                Some(_) => {}
                None => {
                    applied.insert(*index, (*term, cmd, o.node));
                }
            }
        }
    }
    None
}

pub fn leader_completeness(obs: &[Observed<RaftObs>]) -> Option<Violation> {
    // Entries applied so far: index -> (term, the highest term any leader had been elected
    // for when it was first applied). An entry committed by a leader of term at most H must
    // be in the log of every leader elected for a term above H; a candidate of an older
    // term that wins late (its held votes arrive after a pause) is not bound by it.
    let mut applied: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut highest = 0u64;
    for o in obs {
        match &o.obs {
            RaftObs::Applied { index, term, .. } => {
                applied.entry(*index).or_insert((*term, highest));
            }
            RaftObs::Leader { term, log_terms } => {
                for (&index, &(t, bound)) in &applied {
                    if *term > bound && log_terms.get(index as usize - 1) != Some(&t) {
                        let detail = format!(
                            "s{} became leader of term {term} without entry {index} (term {t}), committed by term {bound} at the latest",
                            o.node.0
                        );
                        return Some(violation("leader-completeness", o.time, o.node, detail));
                    }
                }
                highest = highest.max(*term);
            }
            _ => {}
        }
    }
    None
}

/// The committed log as the run ends: the longest prefix any server applied.
fn committed(obs: &[Observed<RaftObs>]) -> BTreeMap<u64, &Command> {
    let mut log = BTreeMap::new();
    for o in obs {
        if let RaftObs::Applied { index, cmd, .. } = &o.obs {
            log.entry(*index).or_insert(cmd);
        }
    }
    log
}

/// Every write a client was told succeeded is in the committed log (the first command
/// applied at each index) and in the final durable logs of a majority of the servers.
pub fn durability(obs: &[Observed<RaftObs>], final_logs: &[Vec<LogEntry>]) -> Option<Violation> {
    let put = |c: &Command| match c {
        Command::Op { client, seq, op: Op::Put { .. } } => Some((*client, *seq)),
        _ => None,
    };
    let written: std::collections::BTreeSet<(u32, u64)> = committed(obs).values().filter_map(|c| put(c)).collect();
    // How many servers hold each write on disk at the end (once per server).
    let mut held: BTreeMap<(u32, u64), usize> = BTreeMap::new();
    for log in final_logs {
        let mine: std::collections::BTreeSet<(u32, u64)> = log.iter().filter_map(|e| put(&e.cmd)).collect();
        for w in mine {
            *held.entry(w).or_insert(0) += 1;
        }
    }
    let holders = |w: (u32, u64)| held.get(&w).copied().unwrap_or(0);
    let majority = final_logs.len() / 2 + 1;
    let mut puts: std::collections::BTreeSet<(u32, u64)> = std::collections::BTreeSet::new();
    for o in obs {
        match &o.obs {
            RaftObs::Invoke { client, seq, op: Op::Put { .. } } => {
                puts.insert((*client, *seq));
            }
            RaftObs::Outcome { client, seq, result: ClientResult::Ok { .. } } if puts.contains(&(*client, *seq)) => {
                let w = (*client, *seq);
                let detail = if !written.contains(&w) {
                    format!("write {w:?} was acknowledged to the client but is not in the committed log")
                } else if holders(w) < majority {
                    format!(
                        "write {w:?} was acknowledged to the client but only {} of {} servers hold it on disk at the end",
                        holders(w),
                        final_logs.len()
                    )
                } else {
                    continue;
                };
                return Some(violation("durability", o.time, o.node, detail));
            }
            _ => {}
        }
    }
    None
}

/// The operations in the committed log, by `(client, seq)`.
fn committed_ops(obs: &[Observed<RaftObs>]) -> std::collections::BTreeSet<(u32, u64)> {
    committed(obs)
        .values()
        .filter_map(|c| match c {
            Command::Op { client, seq, .. } => Some((*client, *seq)),
            Command::Noop => None,
        })
        .collect()
}

/// Confirmations by a leader that had already been superseded (a leader of a higher term
/// had been elected) when it decided, of operations that did not go through the committed
/// log. The decision is the confirmation itself, or, under fencing, the moment the resource
/// accepted the leader's token for the operation: a fence accepted before the pause and
/// acknowledged after it was decided by a current leader. A superseded leader may also
/// rightly confirm an entry a majority accepted in its term (held acks it handles on waking
/// from a pause): that entry is committed, and in the new leader's log. What it must not do
/// is decide from its own state once someone else leads.
fn stale(obs: &[Observed<RaftObs>]) -> Vec<(&Observed<RaftObs>, u64)> {
    let committed = committed_ops(obs);
    let mut elections: Vec<(Time, u64)> = Vec::new();
    let mut fenced: BTreeMap<(u64, u32, u64), Time> = BTreeMap::new();
    let mut found = Vec::new();
    for o in obs {
        match &o.obs {
            RaftObs::Leader { term, .. } => elections.push((o.time, *term)),
            RaftObs::Fenced { token, client, seq, accepted: true } => {
                fenced.entry((*token, *client, *seq)).or_insert(o.time);
            }
            RaftObs::Confirmed { term, client, seq, decided, .. } if !committed.contains(&(*client, *seq)) => {
                let decided = fenced.get(&(*term, *client, *seq)).copied().unwrap_or(*decided);
                let higher = elections.iter().filter(|&&(at, t)| at <= decided && t > *term).map(|&(_, t)| t).max();
                if let Some(h) = higher {
                    found.push((o, h));
                }
            }
            _ => {}
        }
    }
    found
}

pub fn no_stale_confirmation(obs: &[Observed<RaftObs>]) -> Option<Violation> {
    let (o, highest) = stale(obs).into_iter().next()?;
    let RaftObs::Confirmed { term, client, seq, op, .. } = &o.obs else { unreachable!("stale yields confirmations") };
    let detail = format!(
        "s{} confirmed {op:?} ({client}, {seq}) as leader of term {term}, after a leader of term {highest} was elected, from its own state (the operation is not in the committed log)",
        o.node.0
    );
    Some(violation("no-stale-confirmation", o.time, o.node, detail))
}

/// How many confirmations superseded leaders made from their own state: the KapitalKite
/// figure.
pub fn stale_confirmations(obs: &[Observed<RaftObs>]) -> u64 {
    stale(obs).len() as u64
}

pub fn linearizable_reads(obs: &[Observed<RaftObs>]) -> Option<Violation> {
    // Log order of the writes, and when each was first applied: value -> (key, index, at).
    let mut first_applied: BTreeMap<u64, Time> = BTreeMap::new();
    for o in obs {
        if let RaftObs::Applied { index, .. } = &o.obs {
            first_applied.entry(*index).or_insert(o.time);
        }
    }
    let mut write_at: BTreeMap<u64, (u32, u64, Time)> = BTreeMap::new();
    for (index, cmd) in committed(obs) {
        if let Command::Op { op: Op::Put { key, value }, .. } = cmd {
            write_at.entry(*value).or_insert((*key, index, first_applied[&index]));
        }
    }
    // Per key, the highest log index of a write that completed (Ok) so far in real time.
    let mut completed: BTreeMap<u32, u64> = BTreeMap::new();
    let mut invoked: BTreeMap<(u32, u64), (Op, u64)> = BTreeMap::new();
    for o in obs {
        match &o.obs {
            RaftObs::Invoke { client, seq, op } => {
                let floor = match op {
                    Op::Get { key } => completed.get(key).copied().unwrap_or(0),
                    Op::Put { .. } => 0,
                };
                invoked.insert((*client, *seq), (*op, floor));
            }
            RaftObs::Outcome { client, seq, result: ClientResult::Ok { value } } => {
                let Some((op, floor)) = invoked.get(&(*client, *seq)) else { continue };
                match op {
                    Op::Put { key, value: v } => {
                        if let Some(&(_, index, _)) = write_at.get(v) {
                            let c = completed.entry(*key).or_insert(0);
                            *c = (*c).max(index);
                        }
                    }
                    Op::Get { key } => {
                        let read_index = match value {
                            None => 0,
                            // The write must be to this key, and applied before the read
                            // returned (a value from the future is no linearization).
                            Some(v) => match write_at.get(v) {
                                Some(&(k, index, at)) if k == *key && at <= o.time => index,
                                _ => {
                                    let detail = format!(
                                        "read of key {key} by ({client}, {seq}) returned {v}, which no committed write to that key had written by then"
                                    );
                                    return Some(violation("linearizable-reads", o.time, o.node, detail));
                                }
                            },
                        };
                        if read_index < *floor {
                            let detail = format!(
                                "read of key {key} by ({client}, {seq}) returned the write at index {read_index}, but the write at index {floor} had completed before the read began"
                            );
                            return Some(violation("linearizable-reads", o.time, o.node, detail));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// The search budget of the in-run check: deterministic (steps and memo bytes, no clock),
/// and far above what a run's few hundred operations need.
const LINEAR_STEPS: u64 = 20_000_000;
const LINEAR_MEMO_BYTES: usize = 256 << 20;

/// The clients' history, for `crate::linear` (a register per key): one operation per
/// invocation, in the order the run observed them. A timeout (`Unknown`) or an operation
/// still open when the run ended may have happened: `:info`. A definite failure did not
/// happen and is dropped. As in Jepsen, a client whose operation ended unknown continues as
/// a new process (`client + k * clients` after its k-th unknown). Also returns, per event
/// position, when and where it was observed.
pub fn history(obs: &[Observed<RaftObs>]) -> (History, Vec<(Time, NodeId)>) {
    let clients = obs
        .iter()
        .filter_map(|o| match &o.obs {
            RaftObs::Invoke { client, .. } => Some(*client as u64 + 1),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let mut unknowns: BTreeMap<u32, u64> = BTreeMap::new();
    let mut open: BTreeMap<(u32, u64), usize> = BTreeMap::new();
    let mut ops: Vec<Option<Operation>> = Vec::new();
    let mut at: Vec<(Time, NodeId)> = Vec::new();
    let mut failed = 0;
    for o in obs {
        match &o.obs {
            RaftObs::Invoke { client, seq, op } => {
                let process = *client as u64 + unknowns.get(client).copied().unwrap_or(0) * clients;
                let (key, call) = match *op {
                    Op::Put { key, value } => (key, linear::Call::Write(Val::Int(value as i64))),
                    Op::Get { key } => (key, linear::Call::Read),
                };
                let position = at.len() as u64;
                open.insert((*client, *seq), ops.len());
                ops.push(Some(Operation {
                    process,
                    key: Some(Val::Int(key as i64)),
                    call,
                    output: None,
                    invoke: position,
                    complete: None,
                    line: position + 1,
                    complete_line: None,
                }));
                at.push((o.time, o.node));
            }
            RaftObs::Outcome { client, seq, result } => {
                let Some(i) = open.remove(&(*client, *seq)) else { continue };
                let position = at.len() as u64;
                at.push((o.time, o.node));
                match result {
                    ClientResult::Fail => {
                        ops[i] = None;
                        failed += 1;
                    }
                    ClientResult::Unknown => {
                        *unknowns.entry(*client).or_insert(0) += 1;
                        if let Some(op) = &mut ops[i] {
                            op.complete_line = Some(position + 1);
                        }
                    }
                    ClientResult::Ok { value } => {
                        if let Some(op) = &mut ops[i] {
                            op.complete = Some(position);
                            op.complete_line = Some(position + 1);
                            if op.call.is_read() {
                                op.output = Some(value.map_or(Val::Nil, |v| Val::Int(v as i64)));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let events = at.len() as u64;
    (History { ops: ops.into_iter().flatten().collect(), failed, events }, at)
}

/// Full linearizability of the clients' history, by `crate::linear`. Reported at the
/// latest completion among the operations that cannot be ordered (when the anomaly was
/// complete), naming them. A search that runs out of budget claims nothing.
pub fn linearizable(obs: &[Observed<RaftObs>]) -> Option<Violation> {
    let (history, at) = history(obs);
    let report = linear::check(&history, ModelKind::Register, &Budget::steps(LINEAR_STEPS, LINEAR_MEMO_BYTES), false);
    if report.verdict != Verdict::NotLinearizable {
        return None;
    }
    let c = report.counterexample?;
    let last = c.minimal.iter().map(|op| op.complete.unwrap_or(op.invoke)).max().unwrap_or(0);
    let (time, node) = at.get(last as usize).copied().unwrap_or((Time::ZERO, NodeId(0)));
    let key = c.key.as_ref().map_or_else(String::new, |k| format!("key {k}: "));
    let ops: Vec<String> = c
        .minimal
        .iter()
        .map(|op| {
            let (t0, _) = at[op.invoke as usize];
            let end = op
                .complete
                .map_or_else(|| "unknown".to_owned(), |r| format!("{:.3} s", at[r as usize].0.as_millis_f64() / 1e3));
            format!("{op} [{:.3} s, {end}]", t0.as_millis_f64() / 1e3)
        })
        .collect();
    let detail = format!(
        "{key}no order consistent with real time explains these {} client operations: {} (the longest partial linearisation placed {} of the key's {})",
        c.minimal.len(),
        ops.join("; "),
        c.longest.len(),
        c.partition.len()
    );
    Some(violation("linearizable", time, node, detail))
}

/// Liveness: after `healed` (when the last fault ended), a leader exists and a write that
/// was not applied before `healed` is applied within `budget`. `None` when it held, or when
/// the run ended before the budget ran out (inconclusive, not a violation).
pub fn eventually_commits(obs: &[Observed<RaftObs>], healed: Time, budget: Span, run_end: Time) -> Option<Violation> {
    let deadline = healed + budget;
    if run_end < deadline {
        return None;
    }
    let before = obs
        .iter()
        .filter(|o| o.time <= healed)
        .filter_map(|o| match &o.obs {
            RaftObs::Applied { index, .. } => Some(*index),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let progressed = obs.iter().any(|o| {
        o.time > healed
            && o.time <= deadline
            && matches!(&o.obs, RaftObs::Applied { index, cmd: Command::Op { op: Op::Put { .. }, .. }, .. } if *index > before)
    });
    if progressed {
        return None;
    }
    let detail = format!(
        "no new write committed within {budget:?} of the faults healing at {healed:?} (last index applied before: {before})"
    );
    Some(Violation::eventually("eventually-commits", deadline, Some(NodeId(0)), detail))
}
