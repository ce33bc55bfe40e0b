//! Histories with a known answer: concurrent clients run operations against a real
//! sequential object, each taking effect at a random instant inside its interval, so the
//! history is linearizable by construction. Some clients crash mid-operation (`:info`):
//! the operation took effect, or did not, by a coin. Values written are unique, so tests
//! can mutate a history into one no order can explain. Used by the property tests, the
//! benchmark and `faultline check --generate`.

use rand::{Rng, SeedableRng};

use super::model::ModelKind;
use super::{Call, History, Operation, Val};
use crate::rng::SimRng;

/// What to generate.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    pub model: ModelKind,
    /// Operations invoked (those that fail are dropped, as Jepsen's `:fail` are).
    pub ops: usize,
    /// Concurrent client processes.
    pub clients: usize,
    pub keys: usize,
    /// Per mille of operations whose client crashes before the answer (`:info`).
    pub info_permille: u32,
}

struct Pending {
    op: Operation,
    /// Virtual instants: invocation, effect (if it takes effect), completion.
    invoke: u64,
    effect: Option<u64>,
    complete: Option<u64>,
}

/// A linearizable history of `shape`, the same for the same seed.
pub fn history(shape: &Shape, seed: u64) -> History {
    let mut rng = SimRng::seed_from_u64(seed);
    let mut below = |n: u64| rng.next_u64() % n.max(1);
    let clients = shape.clients.max(1);
    let keys = shape.keys.max(1) as u64;
    // Each client's next free instant and its current process id (a crashed client comes
    // back as a new process, as in Jepsen).
    let mut free: Vec<u64> = (0..clients).map(|_| below(100)).collect();
    let mut process: Vec<u64> = (0..clients as u64).collect();
    let mut pending: Vec<Pending> = Vec::with_capacity(shape.ops);
    for fresh in (1i64..).take(shape.ops) {
        // The client free earliest goes next (ties to the lowest index).
        let c = (0..clients).min_by_key(|&c| (free[c], c)).unwrap_or(0);
        let invoke = free[c];
        let length = 1 + below(200);
        let effect = invoke + below(length);
        let key = match (shape.model, shape.keys) {
            (ModelKind::Register, 0 | 1) => None,
            (ModelKind::Register, _) => Some(Val::Int(below(keys) as i64)),
            (ModelKind::Kv, _) => Some(Val::Str(format!("k{}", below(keys)).into())),
        };
        let roll = below(100);
        let call = match shape.model {
            ModelKind::Register if roll < 50 => Call::Read,
            ModelKind::Register if roll < 90 => Call::Write(Val::Int(fresh)),
            // The old value is a recent one, so some succeed and some fail.
            ModelKind::Register => {
                Call::Cas { old: Val::Int((fresh - 1 - below(8) as i64).max(0)), new: Val::Int(fresh) }
            }
            ModelKind::Kv if roll < 50 => Call::Get,
            ModelKind::Kv if roll < 70 => Call::Put(Val::Str(format!("v{fresh};").into())),
            ModelKind::Kv => Call::Append(Val::Str(format!("a{fresh};").into())),
        };
        let crashed = below(1000) < shape.info_permille as u64;
        let (effect, complete) =
            if crashed { (below(2).eq(&0).then_some(effect), None) } else { (Some(effect), Some(invoke + length)) };
        let op = Operation {
            process: process[c],
            key,
            call,
            output: None,
            invoke: 0,
            complete: None,
            line: 0,
            complete_line: None,
        };
        pending.push(Pending { op, invoke, effect, complete });
        free[c] = invoke + length + below(50);
        if crashed {
            process[c] += clients as u64;
        }
    }

    // Run the object in effect order to learn what reads saw and which cas failed.
    let mut by_effect: Vec<usize> = (0..pending.len()).filter(|&i| pending[i].effect.is_some()).collect();
    by_effect.sort_by_key(|&i| (pending[i].effect, i));
    let mut state: std::collections::BTreeMap<Option<Val>, Val> = std::collections::BTreeMap::new();
    let mut failed = vec![false; pending.len()];
    for i in by_effect {
        let p = &mut pending[i];
        let cur = state.get(&p.op.key).cloned().unwrap_or(Val::Nil);
        match &p.op.call {
            Call::Read | Call::Get => {
                if p.complete.is_some() {
                    p.op.output = Some(cur);
                }
            }
            Call::Write(v) | Call::Put(v) => {
                state.insert(p.op.key.clone(), v.clone());
            }
            Call::Cas { old, new } => {
                if cur == *old {
                    state.insert(p.op.key.clone(), new.clone());
                } else if p.complete.is_some() {
                    failed[i] = true;
                }
            }
            Call::Append(Val::Str(piece)) => {
                let before = match &cur {
                    Val::Str(s) => s.to_string(),
                    _ => String::new(),
                };
                state.insert(p.op.key.clone(), Val::Str(format!("{before}{piece}").into()));
            }
            Call::Append(_) => {}
        }
    }

    // Events in time order give positions. At equal times a completion comes first: its
    // effect was strictly earlier, and the invocation's effect is not.
    let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * pending.len());
    for (i, p) in pending.iter().enumerate() {
        events.push((p.invoke, 1, i));
        if let Some(c) = p.complete {
            events.push((c, 0, i));
        }
    }
    events.sort_unstable();
    for (pos, &(_, is_invoke, i)) in events.iter().enumerate() {
        if is_invoke == 1 {
            pending[i].op.invoke = pos as u64;
            pending[i].op.line = pos as u64 + 1;
        } else {
            pending[i].op.complete = Some(pos as u64);
            pending[i].op.complete_line = Some(pos as u64 + 1);
        }
    }
    let total = events.len() as u64;
    let mut ops: Vec<Operation> = Vec::with_capacity(pending.len());
    let mut nfailed = 0;
    for (i, p) in pending.into_iter().enumerate() {
        if failed[i] {
            nfailed += 1;
        } else {
            ops.push(p.op);
        }
    }
    ops.sort_by_key(|o| o.invoke);
    History { ops, failed: nfailed, events: total }
}
