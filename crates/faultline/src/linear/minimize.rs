//! A minimal set of operations that cannot be ordered: delta debugging (Zeller and
//! Hildebrandt's ddmin) over a non-linearizable partition, re-checking each candidate with
//! the search itself, so every set it reports is proven unorderable, never guessed.
//!
//! Removing a write can make a read unexplainable on its own account (a read of 1 with
//! the write of 1 gone), which would shrink a stale read to a lone "read of a value never
//! written", a different and misleading story. So a candidate keeps every write that could
//! have produced a value a kept operation read: the set explains the anomaly it shows.

use std::collections::BTreeMap;

use super::model::ModelKind;
use super::search::{self, Budget, Searched, Verdict};
use super::{Call, Operation, Val};

/// Steps each re-check may take: enough for the sub-histories ddmin tries, small enough
/// that a reduction of a large history ends.
const STEPS_PER_CHECK: u64 = 2_000_000;
/// Re-checks one reduction may make, and the search steps all of them together.
const MAX_CHECKS: u32 = 4_000;
const MAX_TOTAL_STEPS: u64 = 50_000_000;

/// Reduces `ops` (a non-linearizable partition, sorted by invocation; `found` its search)
/// to a minimal set that is still not linearizable (removing any one operation, with the
/// writes it read from, lets the rest be ordered; ddmin's 1-minimality, not the smallest
/// of all such sets). Returns the set in invocation order
/// and whether the reduction finished (false: the budget ran out first).
pub fn minimize(kind: ModelKind, ops: &[Operation], found: &Searched, budget: &Budget<'_>) -> (Vec<Operation>, bool) {
    let check_budget = Budget { max_steps: STEPS_PER_CHECK.min(budget.max_steps), ..*budget };
    let mut checks = 0u32;
    let mut steps = 0u64;
    let complete = std::cell::Cell::new(true);
    // Set when the budget is spent: the reduction then stops where it is.
    let spent = std::cell::Cell::new(false);
    let mut unorderable = |set: &[usize]| -> bool {
        if checks >= MAX_CHECKS || steps >= MAX_TOTAL_STEPS || (budget.stop)() {
            complete.set(false);
            spent.set(true);
            return false;
        }
        checks += 1;
        let sub: Vec<Operation> = set.iter().map(|&i| ops[i].clone()).collect();
        let s = search::search(kind, &sub, &check_budget);
        steps += s.steps;
        if s.verdict == Verdict::Unknown {
            complete.set(false);
        }
        s.verdict == Verdict::NotLinearizable
    };

    // The search could not get past the return of the earliest-returning operation left out
    // of its longest partial linearisation. The first cut is the fewest operations before
    // that return (the last 4, 8, 16, ... invoked, with what they read from) that still
    // cannot be ordered: a set closed under read-from that cannot be ordered is a witness
    // on its own, since any order of the whole history would order it.
    let mut placed = vec![false; ops.len()];
    for &(i, _) in &found.longest {
        placed[i] = true;
    }
    let stuck = (0..ops.len()).filter(|&i| !placed[i]).filter_map(|i| ops[i].complete).min();
    let all: Vec<usize> = (0..ops.len()).collect();
    let feeders = Feeders::new(kind, ops);
    let mut cur = all.clone();
    if let Some(r) = stuck {
        let before: Vec<usize> = all.iter().copied().filter(|&i| ops[i].invoke < r).collect();
        let mut last = 4usize;
        loop {
            let from = before.len().saturating_sub(last);
            let window = feeders.closure(&all, &all_but(&all, &before[from..]));
            if window.len() < cur.len() && unorderable(&window) {
                cur = window;
                break;
            }
            if from == 0 || spent.get() {
                break;
            }
            last *= 2;
        }
    }

    let mut n = 2usize;
    while cur.len() >= 2 && !spent.get() {
        let chunk = cur.len().div_ceil(n);
        let mut reduced = false;
        for start in (0..cur.len()).step_by(chunk) {
            let removed = &cur[start..(start + chunk).min(cur.len())];
            let keep = feeders.closure(&cur, removed);
            if keep.len() < cur.len() && unorderable(&keep) {
                cur = keep;
                n = (n - 1).max(2);
                reduced = true;
                break;
            }
            if spent.get() {
                break;
            }
        }
        if !reduced {
            if n >= cur.len() {
                break;
            }
            n = (2 * n).min(cur.len());
        }
    }
    (cur.into_iter().map(|i| ops[i].clone()).collect(), complete.get())
}

/// `all` without `keep` (both sorted).
fn all_but(all: &[usize], keep: &[usize]) -> Vec<usize> {
    all.iter().copied().filter(|i| keep.binary_search(i).is_err()).collect()
}

/// Which operations could have produced the values others read.
struct Feeders<'a> {
    ops: &'a [Operation],
    kind: ModelKind,
    /// Register: writes and cas operations, by the value they leave.
    by_value: BTreeMap<&'a Val, Vec<usize>>,
    /// Key-value: puts and appends (a string read may be any put followed by appends).
    strings: Vec<usize>,
}

impl<'a> Feeders<'a> {
    fn new(kind: ModelKind, ops: &'a [Operation]) -> Feeders<'a> {
        let mut by_value: BTreeMap<&Val, Vec<usize>> = BTreeMap::new();
        let mut strings = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            match &op.call {
                Call::Write(v) | Call::Cas { new: v, .. } => by_value.entry(v).or_default().push(i),
                Call::Put(_) | Call::Append(_) => strings.push(i),
                Call::Read | Call::Get => {}
            }
        }
        Feeders { ops, kind, by_value, strings }
    }

    /// Whether `w` could have produced (a part of) `seen`.
    fn feeds(&self, w: &Operation, seen: &Val) -> bool {
        fn text(v: &Val) -> std::borrow::Cow<'_, str> {
            match v {
                Val::Str(s) => std::borrow::Cow::Borrowed(s),
                Val::Int(i) => std::borrow::Cow::Owned(i.to_string()),
                Val::Nil => std::borrow::Cow::Borrowed(""),
            }
        }
        match (self.kind, &w.call) {
            (ModelKind::Register, Call::Write(v) | Call::Cas { new: v, .. }) => v == seen,
            // Any put of a prefix (a put of "" too: it resets the key for what follows).
            (ModelKind::Kv, Call::Put(v)) => text(seen).starts_with(&*text(v)),
            (ModelKind::Kv, Call::Append(p)) => !text(p).is_empty() && text(seen).contains(&*text(p)),
            _ => false,
        }
    }

    /// The value an operation depends on having been written: what a read returned, or
    /// what a completed cas found.
    fn reads(op: &Operation) -> Option<&Val> {
        match (&op.call, &op.output) {
            (_, Some(v)) => Some(v),
            // A cas of unknown outcome that took effect read its old value too.
            (Call::Cas { old, .. }, None) => Some(old),
            _ => None,
        }
    }

    /// `cur` without `removed`, except the removed writes a kept operation may have read
    /// from (and, in turn, what those read from). In invocation order.
    fn closure(&self, cur: &[usize], removed: &[usize]) -> Vec<usize> {
        let mut gone = vec![false; self.ops.len()];
        for &i in removed {
            gone[i] = true;
        }
        let mut keep: Vec<usize> = cur.iter().copied().filter(|&i| !gone[i]).collect();
        let mut pending: Vec<usize> = keep.clone();
        while let Some(r) = pending.pop() {
            let Some(seen) = Self::reads(&self.ops[r]) else { continue };
            let writers = match self.kind {
                ModelKind::Register => self.by_value.get(seen).map_or(&[][..], Vec::as_slice),
                ModelKind::Kv => &self.strings[..],
            };
            for &w in writers {
                let feeds = self.feeds(&self.ops[w], seen);
                if gone[w] && w != r && feeds {
                    gone[w] = false;
                    keep.push(w);
                    pending.push(w);
                }
            }
        }
        keep.sort_unstable();
        keep
    }
}
