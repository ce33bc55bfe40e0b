//! The trace: every event of a run as it happened, with ground truth about faults.
//!
//! The simulator hands each event to a [`Tracer`] when one is installed; with none, no
//! event is formatted and tracing costs one branch per event. [`NdjsonTracer`] writes one
//! JSON object per line (the format is documented in docs/trace.md); [`DigestTracer`] keeps
//! a SHA-256 of those same lines and, optionally, the lines themselves, so that two runs
//! can be compared and their first difference named.

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// What happened.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The node's `on_start` ran.
    Start,
    /// A message left `node` for `peer`; `delivery` says when it will arrive.
    Send,
    /// A message from `peer` was handed to `node`.
    Deliver,
    /// A message was lost. Recorded at the sender (`node` sent it to `peer`) when a fault
    /// or a full link dropped it at send time, and at the receiver (`node` received it from
    /// `peer`) when it arrived at a crashed node. `cause` names the fault; a drop with no
    /// omission or crash among its causes was a full link (in-flight cap). A node crashed
    /// before it started has a drop line with no `peer`: its start was dropped.
    Drop,
    /// An event for a paused node was held until it resumes.
    Defer,
    /// A timer of `node` fired.
    Timer,
    /// A fault's window opened (a crash happened, a pause began, a loss rate switched on).
    FaultStart,
    /// A fault's window closed.
    FaultEnd,
    /// The protocol reported an observation.
    Observe,
}

/// One trace event. Borrowed strings: building one allocates only the message summary.
#[derive(Debug, Serialize)]
pub struct TraceEvent<'a> {
    /// Position in the run's event order, from 0.
    pub seq: u64,
    /// Virtual time in nanoseconds.
    pub t_ns: u64,
    pub node: &'a str,
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<&'a str>,
    /// For a send: when the message will be delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_ns: Option<u64>,
    /// The message, timer or observation, as the protocol's `Debug` prints it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'a str>,
    /// Ground truth: the configured faults that caused this event, as `"#<index> <name>
    /// @<node>"`. Empty when nothing injected caused it.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub cause: &'a [String],
}

/// Receives trace events.
pub trait Tracer {
    fn record(&mut self, event: &TraceEvent<'_>);

    /// Flushes what was recorded and reports any error met on the way.
    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes NDJSON. I/O errors are kept and reported by [`Tracer::finish`], not panicked
/// on, so a full disk shows up as an error and not as a crash mid-run.
pub struct NdjsonTracer<W: Write> {
    out: W,
    error: Option<std::io::Error>,
}

impl<W: Write> NdjsonTracer<W> {
    pub fn new(out: W) -> Self {
        NdjsonTracer { out, error: None }
    }
}

impl<W: Write> Tracer for NdjsonTracer<W> {
    fn record(&mut self, event: &TraceEvent<'_>) {
        if self.error.is_some() {
            return;
        }
        let line = serde_json::to_string(event).expect("trace events always serialize");
        if let Err(e) = writeln!(self.out, "{line}") {
            self.error = Some(e);
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()
    }
}

/// Hashes the NDJSON form of every event; keeps the lines too when asked, to name the
/// first difference between two runs. Clones share one state, so a caller can keep a clone
/// and hand the simulator another.
#[derive(Clone, Default)]
pub struct DigestTracer {
    state: Rc<RefCell<DigestState>>,
}

#[derive(Default)]
struct DigestState {
    hasher: Sha256,
    events: u64,
    lines: Option<Vec<String>>,
}

impl DigestTracer {
    pub fn new(keep_lines: bool) -> Self {
        let state = DigestState { hasher: Sha256::new(), events: 0, lines: keep_lines.then(Vec::new) };
        DigestTracer { state: Rc::new(RefCell::new(state)) }
    }

    pub fn events(&self) -> u64 {
        self.state.borrow().events
    }

    /// The lines recorded, if the tracer was asked to keep them.
    pub fn lines(&self) -> Vec<String> {
        self.state.borrow().lines.clone().unwrap_or_default()
    }

    /// The SHA-256 of all lines so far, as lowercase hex.
    pub fn hex_digest(&self) -> String {
        self.state.borrow().hasher.clone().finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl Tracer for DigestTracer {
    fn record(&mut self, event: &TraceEvent<'_>) {
        let line = serde_json::to_string(event).expect("trace events always serialize");
        let mut state = self.state.borrow_mut();
        state.hasher.update(line.as_bytes());
        state.hasher.update(b"\n");
        state.events += 1;
        if let Some(lines) = &mut state.lines {
            lines.push(line);
        }
    }
}

/// Names the first position at which two traces differ, or `None` if they are identical.
pub fn first_difference(a: &[String], b: &[String]) -> Option<String> {
    let i = a.iter().zip(b).position(|(x, y)| x != y);
    match i {
        Some(i) => Some(format!("event {i} differs:\n  first:  {}\n  second: {}", a[i], b[i])),
        None if a.len() != b.len() => Some(format!(
            "traces agree for {} events, then one has {} and the other {}",
            a.len().min(b.len()),
            a.len(),
            b.len()
        )),
        None => None,
    }
}
