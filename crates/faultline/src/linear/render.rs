//! A counterexample as a person reads it: the set that cannot be ordered, the longest
//! partial linearisation, and a timeline per process around them (one column per process,
//! time running down, as Jepsen's timeline.html and Porcupine's visualisation draw it).
//! The SVG is drawn by the command line from [`window`].

use std::fmt::Write as _;

use super::{Call, Counterexample, Operation};

/// The most operations a timeline draws: the set, then the closest others.
pub const TIMELINE_OPS: usize = 40;
/// The tail of the longest partial linearisation printed as text.
pub const LONGEST_SHOWN: usize = 12;

/// How an operation figures in a counterexample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marked<'a> {
    pub op: &'a Operation,
    /// In the minimal set that cannot be ordered.
    pub in_set: bool,
    /// Its place (from 1) in the longest partial linearisation.
    pub placed: Option<usize>,
}

/// What an operation asked, without its process or key: `write 4`, `read`, `cas [1 2]`,
/// `put "x"`.
pub fn call_text(op: &Operation) -> String {
    let mut s = op.call.f().to_owned();
    match &op.call {
        Call::Read | Call::Get => {}
        Call::Write(v) | Call::Put(v) | Call::Append(v) => {
            let _ = write!(s, " {v}");
        }
        Call::Cas { old, new } => {
            let _ = write!(s, " [{old} {new}]");
        }
    }
    s
}

/// The operations a timeline shows: every operation of the set, and the others of the
/// partition whose interval meets the set's span, the closest first, up to
/// [`TIMELINE_OPS`]; in invocation order.
pub fn window(c: &Counterexample) -> Vec<Marked<'_>> {
    let mut place = std::collections::BTreeMap::new();
    for (k, (op, _)) in c.longest.iter().enumerate() {
        place.insert(op.invoke, k + 1);
    }
    let in_set: std::collections::BTreeSet<u64> = c.minimal.iter().map(|o| o.invoke).collect();
    let from = c.minimal.iter().map(|o| o.invoke).min().unwrap_or(0);
    let to = c.minimal.iter().map(|o| o.complete.unwrap_or(u64::MAX)).max().unwrap_or(0);
    let mut others: Vec<&Operation> = c
        .partition
        .iter()
        .filter(|o| !in_set.contains(&o.invoke))
        .filter(|o| o.invoke <= to && o.complete.is_none_or(|r| r >= from))
        .collect();
    // The closest to the set's span first: by how far the interval lies outside it.
    others.sort_by_key(|o| {
        (from.saturating_sub(o.complete.unwrap_or(u64::MAX)).max(o.invoke.saturating_sub(to)), o.invoke)
    });
    others.truncate(TIMELINE_OPS.saturating_sub(in_set.len()));
    let mut shown: Vec<&Operation> = c.partition.iter().filter(|o| in_set.contains(&o.invoke)).collect();
    shown.extend(others);
    shown.sort_by_key(|o| o.invoke);
    shown
        .into_iter()
        .map(|op| Marked { op, in_set: in_set.contains(&op.invoke), placed: place.get(&op.invoke).copied() })
        .collect()
}

/// The set, one operation per line.
pub fn set_text(c: &Counterexample, indent: &str) -> String {
    let mut s = String::new();
    for op in &c.minimal {
        let _ = writeln!(s, "{indent}line {:<6} {}", op.line, op);
    }
    s
}

/// The tail of the longest partial linearisation, with the state after each step.
pub fn longest_text(c: &Counterexample, indent: &str) -> String {
    let mut s = String::new();
    let skip = c.longest.len().saturating_sub(LONGEST_SHOWN);
    if skip > 0 {
        let _ = writeln!(s, "{indent}... {skip} earlier");
    }
    for (k, (op, state)) in c.longest.iter().enumerate().skip(skip) {
        let _ = writeln!(s, "{indent}#{:<5} line {:<6} {:<32} state {state}", k + 1, op.line, op.to_string());
    }
    if let Some(op) = stuck(c) {
        let _ = writeln!(s, "{indent}then the next operation to return cannot be placed: line {} {op}", op.line);
    }
    s
}

/// The operation the longest partial linearisation could not get past: of those it left
/// out, the first to return.
pub fn stuck(c: &Counterexample) -> Option<&Operation> {
    let placed: std::collections::BTreeSet<u64> = c.longest.iter().map(|(op, _)| op.invoke).collect();
    c.partition
        .iter()
        .filter(|o| !placed.contains(&o.invoke))
        .filter(|o| o.complete.is_some())
        .min_by_key(|o| o.complete)
}

/// The timeline: a row per event (invocation or completion) of the window's operations,
/// a column per process. `[` opens an operation, `|` it is in flight, `]` it returned;
/// `*` marks the set, `#k` the k-th step of the longest partial linearisation.
pub fn timeline_text(c: &Counterexample, indent: &str) -> String {
    let shown = window(c);
    let mut processes: Vec<u64> = shown.iter().map(|m| m.op.process).collect();
    processes.sort_unstable();
    processes.dedup();
    // (position, line, process column, text, opens/closes)
    let mut rows: Vec<(u64, u64, usize, String, i8)> = Vec::new();
    let mut last = 0;
    for m in &shown {
        let col = processes.binary_search(&m.op.process).unwrap_or(0);
        let mut label = format!("[ {}", call_text(m.op));
        if m.in_set {
            label.push_str(" *");
        }
        if let Some(k) = m.placed {
            let _ = write!(label, " #{k}");
        }
        rows.push((m.op.invoke, m.op.line, col, label, 1));
        last = last.max(m.op.invoke).max(m.op.complete.unwrap_or(0));
        let done = match (&m.op.output, m.op.complete) {
            (Some(v), Some(_)) => format!("] ok {v}"),
            (None, Some(_)) => "] ok".to_owned(),
            (_, None) => "] info (outcome unknown)".to_owned(),
        };
        let (pos, line) = match m.op.complete {
            Some(r) => (r, m.op.complete_line.unwrap_or(0)),
            None => (u64::MAX, m.op.complete_line.unwrap_or(0)),
        };
        rows.push((pos, line, col, done, -1));
    }
    rows.sort_by_key(|r| (r.0, r.2));
    let width = rows.iter().map(|r| r.3.chars().count()).max().unwrap_or(8).clamp(8, 30) + 2;
    let mut s = String::new();
    let _ = write!(s, "{indent}{:>6}  ", "line");
    for p in &processes {
        let _ = write!(s, "{:<width$}", format!("p{p}"));
    }
    s = s.trim_end().to_owned();
    s.push('\n');
    let mut open = vec![false; processes.len()];
    for (_, line, col, text, kind) in rows {
        let mut row = String::new();
        let line = if line == 0 { String::new() } else { line.to_string() };
        let _ = write!(row, "{indent}{line:>6}  ");
        for (k, is_open) in open.iter().enumerate() {
            let cell = if k == col {
                let mut t: String = text.chars().take(width - 2).collect();
                if text.chars().count() > width - 2 {
                    t.pop();
                    t.push('~');
                }
                t
            } else if *is_open {
                "|".to_owned()
            } else {
                String::new()
            };
            let _ = write!(row, "{cell:<width$}");
        }
        open[col] = kind > 0;
        s.push_str(row.trim_end());
        s.push('\n');
    }
    s
}
