//! Linearizability: is there one order of a history's operations, consistent with real
//! time, that the object's sequential specification allows? (Herlihy and Wing, 1990.)
//!
//! The checker is the one the best tools use (Porcupine, Knossos's `linear` and stateright's
//! tester descend from the same papers):
//! - Wing and Gong's search (1993) over a list of call and return events: linearise a
//!   pending call whose step the model allows, backtrack when a return is reached whose
//!   call is not linearised yet;
//! - Lowe's memoisation (2017): the pair (set of linearised operations, model state) is
//!   searched once; a pair seen before is a dead end already explored;
//! - P-compositionality (Horn and Kroening, 2015): a history over independent keys is
//!   linearizable if and only if each key's sub-history is, so keys are checked apart and
//!   in parallel, and the verdicts gathered in key order (identical for any thread count).
//!
//! Jepsen's semantics: a `:fail` did not happen and is dropped; an `:info` (or an
//! invocation never completed) may have taken effect at any point after its invocation, or
//! never. The search gives it a return at the end of time: linearised last, its effect is
//! unseen, which is the same as never happening.
//!
//! When a history is not linearizable, [`minimize`] finds a minimal set of operations
//! that cannot be ordered, and the search reports the longest partial linearisation it
//! found; [`render`] draws both per process. docs/linearizability.md is the reference.

pub mod generate;
pub mod minimize;
pub mod model;
pub mod naive;
pub mod parse;
pub mod render;
pub mod search;

use std::fmt;

pub use model::ModelKind;

/// A value in a history: an integer, a string, or nil.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Val {
    Nil,
    Int(i64),
    Str(Box<str>),
}

impl fmt::Display for Val {
    /// EDN's spelling: `nil`, `4`, `"text"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Nil => f.write_str("nil"),
            Val::Int(i) => write!(f, "{i}"),
            Val::Str(s) => {
                f.write_str("\"")?;
                for c in s.chars() {
                    match c {
                        '"' => f.write_str("\\\"")?,
                        '\\' => f.write_str("\\\\")?,
                        '\n' => f.write_str("\\n")?,
                        '\t' => f.write_str("\\t")?,
                        '\r' => f.write_str("\\r")?,
                        c if c.is_control() => write!(f, "\\u{:04x}", c as u32)?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("\"")
            }
        }
    }
}

/// What an operation asked of the object: the register's `read`, `write`, `cas` or the
/// key-value store's `get`, `put`, `append` (with their inputs).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    Read,
    Write(Val),
    Cas { old: Val, new: Val },
    Get,
    Put(Val),
    Append(Val),
}

impl Call {
    /// Jepsen's `:f` for it.
    pub fn f(&self) -> &'static str {
        match self {
            Call::Read => "read",
            Call::Write(_) => "write",
            Call::Cas { .. } => "cas",
            Call::Get => "get",
            Call::Put(_) => "put",
            Call::Append(_) => "append",
        }
    }

    /// Whether it only observes (a read or a get).
    pub fn is_read(&self) -> bool {
        matches!(self, Call::Read | Call::Get)
    }
}

/// One operation of a history: an invocation and what became of it. `:fail` operations
/// are not kept (they did not happen); [`History::failed`] counts them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// Jepsen's `:process` (the client that issued it).
    pub process: u64,
    /// The key it acts on; `None` for a history of one register.
    pub key: Option<Val>,
    pub call: Call,
    /// What a completed read returned (`Some` only for an `:ok` read or get).
    pub output: Option<Val>,
    /// Position of the invocation among the history's events (0-based, in file order).
    pub invoke: u64,
    /// Position of the `:ok`; `None` when the outcome is unknown (`:info`, or never
    /// completed before the history ended).
    pub complete: Option<u64>,
    /// The file line of the invocation (from 1), to point a reader at it.
    pub line: u64,
    /// The file line of the completion, when there is one (`:ok` or `:info`).
    pub complete_line: Option<u64>,
}

impl Operation {
    /// Whether its outcome is unknown: it may have happened, or not.
    pub fn is_info(&self) -> bool {
        self.complete.is_none()
    }
}

impl fmt::Display for Operation {
    /// `p3 write 4`, `p0 read -> 4`, `p1 cas [1 2]`, `p2 append "x"`, `p4 write 7 (info)`.
    /// The key is left out: a counterexample lies within one key, named beside it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{} {}", self.process, render::call_text(self))?;
        if let Some(v) = &self.output {
            write!(f, " -> {v}")?;
        }
        if self.is_info() {
            f.write_str(" (info)")?;
        }
        Ok(())
    }
}

impl History {
    /// The history as Jepsen's EDN, one map per event in history order (`:index` its
    /// position); completions of unknown outcome go at the end as `:info`, which Jepsen's
    /// semantics treat the same wherever they stand after the invocation.
    pub fn to_edn(&self) -> String {
        use std::fmt::Write as _;
        let mut events: Vec<(u64, usize, bool)> = Vec::with_capacity(2 * self.ops.len());
        for (i, op) in self.ops.iter().enumerate() {
            events.push((op.invoke, i, true));
            events.push((op.complete.unwrap_or(u64::MAX), i, false));
        }
        events.sort_unstable();
        let mut s = String::new();
        for (index, (_, i, invoke)) in events.into_iter().enumerate() {
            let op = &self.ops[i];
            let kind = match (invoke, op.is_info()) {
                (true, _) => "invoke",
                (false, false) => "ok",
                (false, true) => "info",
            };
            let _ = write!(s, "{{:index {index}, :process {}, :type :{kind}, :f :{}", op.process, op.call.f());
            if let Some(k) = &op.key {
                let _ = write!(s, ", :key {k}");
            }
            let value = match (&op.call, invoke) {
                (Call::Read | Call::Get, true) => "nil".to_owned(),
                (Call::Read | Call::Get, false) => op.output.as_ref().map_or_else(|| "nil".to_owned(), Val::to_string),
                (Call::Write(v) | Call::Put(v) | Call::Append(v), _) => v.to_string(),
                (Call::Cas { old, new }, _) => format!("[{old} {new}]"),
            };
            let _ = writeln!(s, ", :value {value}}}");
        }
        s
    }
}

/// A parsed history: its operations in invocation order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    pub ops: Vec<Operation>,
    /// How many invocations ended `:fail` (dropped: they did not happen).
    pub failed: u64,
    /// How many events (invocations and completions of client processes) the file held.
    pub events: u64,
}

pub use search::{Budget, Exhausted, Verdict};

/// One partition's verdict.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PartitionReport {
    /// The key (`None` for a history of one register), as the history spells it.
    pub key: Option<String>,
    pub ops: usize,
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exhausted: Option<Exhausted>,
    pub steps: u64,
    pub memo_states: u64,
}

/// Why a history is not linearizable, in a form a person can read.
#[derive(Clone, Debug)]
pub struct Counterexample {
    /// The partition it is in.
    pub key: Option<Val>,
    /// A minimal set of operations that cannot be ordered: the sub-history of these alone
    /// is not linearizable, and removing any one of them (with the writes it read from)
    /// makes it so. In invocation order.
    pub minimal: Vec<Operation>,
    /// Whether the reduction ran to the end (false: the budget ran out first, and the set
    /// is smaller than the partition but perhaps not minimal).
    pub minimal_complete: bool,
    /// The longest partial linearisation the search met, with the state after each.
    pub longest: Vec<(Operation, String)>,
    /// The whole partition, for drawing timelines around the set.
    pub partition: Vec<Operation>,
}

/// A partition without its operations of unknown outcome that nothing observed: a read
/// of unknown outcome, and a write (or cas, put, append) of unknown outcome whose value no
/// read returned (and, for the register, no cas expected). Such an operation can always be
/// placed last, after every read of the key, where it changes nothing anyone saw; and in
/// any order that places it earlier, no read sees its effect before a later write hides
/// it, so the order stays valid without it. Leaving these out changes no verdict and
/// spares the search the orders of operations that never mattered, which otherwise grow
/// exponentially with the number of crashed clients.
fn unobserved_left_out(model: ModelKind, ops: Vec<Operation>) -> Vec<Operation> {
    if !ops.iter().any(Operation::is_info) {
        return ops;
    }
    let unread = unread_writes(model, &ops);
    ops.into_iter().zip(unread).filter_map(|(o, u)| (!o.is_info() || !u).then_some(o)).collect()
}

/// Per operation, whether it is a write (write, put or append; a cas has a precondition
/// and is never one) whose value no read returned and no cas expected: what it leaves, nobody
/// saw. Reads of unknown outcome are counted too (they observe nothing). The search never
/// branches on such a write (it places it just before another write, or at its return),
/// and one of unknown outcome is left out altogether.
pub(crate) fn unread_writes(model: ModelKind, ops: &[Operation]) -> Vec<bool> {
    use std::collections::BTreeSet;
    let text = |v: &Val| match v {
        Val::Nil => String::new(),
        Val::Int(i) => i.to_string(),
        Val::Str(s) => s.to_string(),
    };
    let seen: BTreeSet<&Val> = ops
        .iter()
        .filter_map(|o| match (&o.call, &o.output) {
            (_, Some(v)) => Some(v),
            (Call::Cas { old, .. }, None) => Some(old),
            _ => None,
        })
        .collect();
    // The key-value model: what reads returned, as text; an append is seen if its piece is
    // in one of them. That costs (appends x distinct reads): past a bound, appends count
    // as seen (no reduction, the same verdict).
    let texts: BTreeSet<String> =
        if model == ModelKind::Kv { seen.iter().map(|v| text(v)).collect() } else { BTreeSet::new() };
    let appends = ops.iter().filter(|o| matches!(o.call, Call::Append(_))).count();
    let scan_appends = appends.saturating_mul(texts.len()) <= 20_000_000;
    let observed = |op: &Operation| -> bool {
        match (&op.call, model) {
            (Call::Read | Call::Get, _) => false,
            (Call::Write(v) | Call::Cas { new: v, .. }, ModelKind::Register) => seen.contains(v),
            (Call::Put(v), ModelKind::Kv) => {
                let v = text(v);
                v.is_empty() || texts.range(v.clone()..).next().is_some_and(|s| s.starts_with(&v))
            }
            (Call::Append(p), ModelKind::Kv) => {
                let p = text(p);
                !scan_appends || p.is_empty() || texts.iter().any(|s| s.contains(&p))
            }
            // An operation of the other model never reaches here; keep it if it does.
            _ => true,
        }
    };
    ops.iter()
        .map(|o| match &o.call {
            Call::Read | Call::Get => o.output.is_none(),
            Call::Cas { .. } => o.is_info() && !observed(o),
            _ => !observed(o),
        })
        .collect()
}

/// A check's outcome.
#[derive(Clone, Debug)]
pub struct Report {
    pub model: ModelKind,
    pub verdict: Verdict,
    pub ops: usize,
    pub info: usize,
    pub failed: u64,
    /// Per partition, in key order.
    pub partitions: Vec<PartitionReport>,
    /// For the first partition (in key order) found not linearizable.
    pub counterexample: Option<Counterexample>,
}

/// Checks `history` against `model`: each key apart, in parallel when `parallel` (rayon's
/// pool), with the same verdicts either way. The memo budget is shared out over the
/// threads that may search at once, so memory stays within `budget.max_memo_bytes`.
pub fn check(history: &History, model: ModelKind, budget: &Budget<'_>, parallel: bool) -> Report {
    use rayon::prelude::*;
    let parts = search::partitions(&history.ops);
    let threads = if parallel { rayon::current_num_threads().clamp(1, parts.len().max(1)) } else { 1 };
    let share = Budget { max_memo_bytes: budget.max_memo_bytes / threads, ..*budget };
    let run = |(key, idx): &(Option<Val>, Vec<usize>)| {
        let ops: Vec<Operation> = idx.iter().map(|&i| history.ops[i].clone()).collect();
        let ops = unobserved_left_out(model, ops);
        let found = search::search(model, &ops, &share);
        (key.clone(), ops, found)
    };
    let results: Vec<_> = if parallel { parts.par_iter().map(run).collect() } else { parts.iter().map(run).collect() };
    // A key whose search ran out of memory while sharing it is searched again alone, with
    // all of it: then no verdict depends on how many threads there were.
    let mut results = results;
    for (_, ops, found) in results.iter_mut() {
        if threads > 1 && found.exhausted == Some(Exhausted::Memory) {
            *found = search::search(model, ops, budget);
        }
    }
    let verdict = results.iter().map(|(_, _, s)| s.verdict).max().unwrap_or(Verdict::Linearizable);
    let partitions = results
        .iter()
        .map(|(key, ops, s)| PartitionReport {
            key: key.as_ref().map(Val::to_string),
            ops: ops.len(),
            verdict: s.verdict,
            exhausted: s.exhausted,
            steps: s.steps,
            memo_states: s.memo_states,
        })
        .collect();
    let counterexample =
        results.into_iter().find(|(_, _, s)| s.verdict == Verdict::NotLinearizable).map(|(key, ops, s)| {
            let longest = s.longest.iter().map(|(i, st)| (ops[*i].clone(), st.clone())).collect();
            let (minimal, minimal_complete) = minimize::minimize(model, &ops, &s, budget);
            Counterexample { key, minimal, minimal_complete, longest, partition: ops }
        });
    Report {
        model,
        verdict,
        ops: history.ops.len(),
        info: history.ops.iter().filter(|o| o.is_info()).count(),
        failed: history.failed,
        partitions,
        counterexample,
    }
}

#[cfg(test)]
mod tests;
