//! What a checker reports: a property that did not hold, in one shared type for every
//! workload, with the class that says what its violation means.
//!
//! The checkers themselves live beside their protocols (`protocols/quorum/check.rs`,
//! `protocols/raft/check.rs`), above the state machines they read: a workload lists them,
//! and the command line turns their violations into exit codes (1 for safety, 3 for
//! liveness only) and `reproduce:` lines.

use serde::Serialize;

use crate::protocol::NodeId;
use crate::time::Time;

/// What a property promises, and so what its violation means (stateright's `always` and
/// `eventually`; TigerBeetle's simulator keeps the two failure classes apart the same way).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Safety: nothing bad ever happens. A violation is a bug the run proves (exit code 1).
    Always,
    /// Liveness: something good happens after the faults heal. A violation is a run that
    /// stopped making progress (exit code 3).
    Eventually,
}

/// A property that did not hold, at the first event that broke it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Violation {
    /// The property's name, e.g. `election-safety`.
    pub property: &'static str,
    pub class: Class,
    /// Virtual time of the violating event, in nanoseconds.
    pub t_ns: u64,
    /// The node whose event broke the property, when one did (a property of the whole
    /// run, such as agreement between final logs, may name the first node involved).
    pub node: Option<NodeId>,
    pub detail: String,
}

impl Violation {
    /// A safety property broken at `at`.
    pub fn always(property: &'static str, at: Time, node: Option<NodeId>, detail: String) -> Violation {
        Violation { property, class: Class::Always, t_ns: at.as_nanos(), node, detail }
    }

    /// A liveness property broken at `at`.
    pub fn eventually(property: &'static str, at: Time, node: Option<NodeId>, detail: String) -> Violation {
        Violation { property, class: Class::Eventually, t_ns: at.as_nanos(), node, detail }
    }
}

/// `{ property, t_ns, node, detail }`: the shape Raft's rows have had since its checkers
/// landed, kept when violations became one shared type (PBFT's rows use it too).
pub fn serialize_violations<S: serde::Serializer>(vs: &[Violation], s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Shape<'a> {
        property: &'a str,
        t_ns: u64,
        node: u32,
        detail: &'a str,
    }
    s.collect_seq(vs.iter().map(|v| Shape {
        property: v.property,
        t_ns: v.t_ns,
        node: v.node.map_or(0, |n| n.0),
        detail: &v.detail,
    }))
}
