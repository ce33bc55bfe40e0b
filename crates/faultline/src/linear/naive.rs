//! A naive checker, to check the checker: it tries every order of the whole history that
//! respects real time (and, for each operation of unknown outcome, leaving it out), with
//! its own sequential specification written over plain values and a map of keys. It shares
//! nothing with the search but the history types: no interning, no partitions, no memo.
//! Exponential; for histories of a dozen operations.

use std::collections::BTreeMap;

use super::model::ModelKind;
use super::{Call, Operation, Val};

/// Whether `ops` is linearizable, by brute force.
pub fn linearizable(kind: ModelKind, ops: &[Operation]) -> bool {
    let mut placed = vec![false; ops.len()];
    let mut state: BTreeMap<Option<Val>, Val> = BTreeMap::new();
    search(kind, ops, &mut placed, &mut state)
}

fn search(kind: ModelKind, ops: &[Operation], placed: &mut [bool], state: &mut BTreeMap<Option<Val>, Val>) -> bool {
    // Done when every operation that completed is placed (those of unknown outcome left
    // out never happened).
    if (0..ops.len()).all(|i| placed[i] || ops[i].is_info()) {
        return true;
    }
    for i in 0..ops.len() {
        if placed[i] {
            continue;
        }
        // Every operation that returned before this one was invoked must come first.
        let ready = (0..ops.len()).all(|j| placed[j] || ops[j].complete.is_none_or(|c| c > ops[i].invoke));
        if !ready {
            continue;
        }
        let key = ops[i].key.clone();
        let before = state.get(&key).cloned().unwrap_or(Val::Nil);
        let Some(after) = apply(kind, &ops[i], &before) else { continue };
        placed[i] = true;
        state.insert(key.clone(), after);
        if search(kind, ops, placed, state) {
            return true;
        }
        placed[i] = false;
        state.insert(key, before);
    }
    false
}

/// The specification, directly over values.
fn apply(kind: ModelKind, op: &Operation, state: &Val) -> Option<Val> {
    let text = |v: &Val| match v {
        Val::Nil => String::new(),
        Val::Str(s) => s.to_string(),
        Val::Int(i) => i.to_string(),
    };
    match (&op.call, kind) {
        (Call::Read | Call::Get, ModelKind::Register) => match &op.output {
            Some(v) if v != state => None,
            _ => Some(state.clone()),
        },
        (Call::Read | Call::Get, ModelKind::Kv) => match &op.output {
            Some(v) if text(v) != text(state) => None,
            _ => Some(state.clone()),
        },
        (Call::Write(v) | Call::Put(v), _) => Some(v.clone()),
        (Call::Cas { old, new }, _) => {
            if state == old {
                Some(new.clone())
            } else if op.is_info() {
                Some(state.clone())
            } else {
                None
            }
        }
        (Call::Append(p), _) => Some(Val::Str(format!("{}{}", text(state), text(p)).into())),
    }
}
