//! Modules depend on each other in one direction only (lib.rs draws the map). This test
//! reads the library's sources and fails when a module names a module it must not: the
//! leaves (virtual time, random streams, latency distributions) name none, the protocol
//! interface names only the leaves, the simulator never names a concrete protocol, the
//! scenario loader and the workload interface name no concrete protocol (only the registry
//! lists them), and nothing below the loader names checkers, reports or detectors.
//!
//! A protocol's folder has two halves: its state machines (named like the simulator's
//! peers) and, in `workload.rs`, `check.rs` and `report.rs`, what sits above the loader
//! (its table, checkers and rows).
//!
//! Only code counts: `//` comments (doc links among them) may point anywhere.

use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// A module (a file or a folder under src/) and the crate modules its code may name.
const RULES: &[(&str, &[&str])] = &[
    ("time.rs", &[]),
    ("rng.rs", &[]),
    ("input.rs", &[]),
    ("trace.rs", &[]),
    ("signals", &["signals", "input"]),
    // Histories and the linearizability checker: histories in, verdicts out.
    ("linear", &["linear", "input", "rng"]),
    ("latency.rs", &["time", "rng"]),
    ("protocol", &["protocol", "time", "rng"]),
    ("fault.rs", &["protocol", "time", "rng", "latency"]),
    ("sim", &["sim", "protocol", "fault", "trace", "time", "rng", "latency"]),
    ("protocols", &["protocols", "protocol", "sim", "fault", "time", "rng", "latency"]),
    ("check", &["check", "protocol", "time"]),
    // Detectors, and their evaluation over a heartbeat run: above the protocols' state
    // machines and the loader, below every protocol's workload (the heartbeat's names them).
    ("detect", &["detect", "protocols", "protocol", "sim", "fault", "scenario", "trace", "time", "rng", "latency"]),
    ("scenario", &["scenario", "input", "protocol", "sim", "fault", "trace", "time", "rng", "latency"]),
    // The observers of a simulated run: the simulator and scenarios below, signals out.
    ("observe", &["observe", "diagnose", "signals", "scenario", "protocol", "sim", "fault", "time", "rng", "latency"]),
    // The diagnoser: signals in, verdicts out.
    ("diagnose", &["diagnose", "signals"]),
    (
        "workload.rs",
        &[
            "workload", "scenario", "check", "observe", "linear", "input", "protocol", "sim", "fault", "trace", "time",
            "rng", "latency",
        ],
    ),
];

/// The upper half of a protocol's folder: its workload, checkers and report.
const UPPER_HALF: [&str; 3] = ["workload.rs", "check.rs", "report.rs"];
const UPPER_HALF_MAY_NAME: &[&str] = &[
    "protocols",
    "protocol",
    "sim",
    "fault",
    "time",
    "rng",
    "latency",
    "trace",
    "input",
    "scenario",
    "check",
    "workload",
    "detect",
    "observe",
    "linear",
];

fn files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).unwrap() {
        out.extend(files(&entry.unwrap().path()));
    }
    out
}

/// The crate modules named in `text`'s code, as `crate::NAME`.
fn named(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line.match_indices("crate::") {
            let name: String = line[i + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            out.push(name);
        }
    }
    out
}

#[test]
fn modules_depend_on_each_other_in_one_direction() {
    let mut broken = Vec::new();
    for (module, allowed) in RULES {
        for file in files(&Path::new(SRC).join(module)) {
            let text = std::fs::read_to_string(&file).unwrap();
            let upper = *module == "protocols"
                && file.file_name().is_some_and(|n| UPPER_HALF.contains(&n.to_string_lossy().as_ref()));
            let allowed = if upper { UPPER_HALF_MAY_NAME } else { allowed };
            for name in named(&text) {
                if !allowed.contains(&name.as_str()) {
                    broken.push(format!("{}: names crate::{name}", file.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "modules named against the layering:\n{}", broken.join("\n"));
}

/// The protocol upper halves named in `text`'s code (`crate::protocols::raft::check`), and
/// the workload types they export that the lower layers must not name either.
fn upper_halves(text: &str) -> Vec<String> {
    let types = workload_types();
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line.match_indices("crate::protocols::") {
            let path: String =
                line[i + 18..].chars().take_while(|c| c.is_ascii_alphanumeric() || "_:{}, ".contains(*c)).collect();
            let words = path.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            out.extend(
                words
                    .filter(|w| ["workload", "check", "report"].contains(w) || types.iter().any(|t| t == w))
                    .map(str::to_owned),
            );
        }
    }
    out
}

/// The `Workload` types the protocols export, which live in their upper halves: every
/// `impl Workload for NAME` under src/protocols, so a new protocol is covered unasked.
fn workload_types() -> Vec<String> {
    let mut out = Vec::new();
    for file in files(&Path::new(SRC).join("protocols")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, _) in text.match_indices("impl Workload for ") {
            out.push(text[i + 18..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect());
        }
    }
    out
}

/// Below the protocols' upper halves (everything but the protocols, the workload registry
/// and the crate root), no module may name a protocol's workload, checkers or report:
/// that would be a cycle through the upper half.
#[test]
fn nothing_below_a_protocols_workload_names_it() {
    let mut broken = Vec::new();
    for file in files(Path::new(SRC)) {
        let rel = file.strip_prefix(SRC).unwrap().to_string_lossy().into_owned();
        if rel.starts_with("protocols") || rel == "registry.rs" || rel == "lib.rs" {
            continue;
        }
        for name in upper_halves(&std::fs::read_to_string(&file).unwrap()) {
            broken.push(format!("{rel}: names the upper half of a protocol ({name})"));
        }
    }
    assert!(broken.is_empty(), "cycles through a protocol's upper half:\n{}", broken.join("\n"));
}

#[test]
fn the_rule_catches_a_forbidden_name() {
    let types = workload_types();
    for t in ["Heartbeat", "Quorum", "Raft"] {
        assert!(types.iter().any(|x| x == t), "{t} not found among {types:?}");
    }
    assert_eq!(
        named("use crate::protocols::raft;\n// see crate::report\nlet x = crate::sim::Sim;"),
        ["protocols", "sim"]
    );
    assert_eq!(
        upper_halves(
            "use crate::protocols::heartbeat::{Heartbeat, HeartbeatConfig};\nuse crate::protocols::raft::check;"
        ),
        ["Heartbeat", "check"]
    );
    assert!(upper_halves("use crate::protocols::heartbeat::{HeartbeatConfig, Signal};").is_empty());
}
