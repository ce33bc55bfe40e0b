//! Scenario files: what to run, on which network, under which faults.
//!
//! A scenario is TOML (docs/scenarios.md documents every field). Loading has two stages: a
//! raw serde struct that denies unknown fields ([`raw`]), then validation into the typed
//! [`Scenario`] ([`validate`]). Every error is one line naming the file, the line and
//! column, and the field, e.g.
//! `scenarios/x.toml:14:5: cases[1].faults[0].p: probability 1.5 is outside [0, 1]`.
//! Command-line overrides (`--set quorum.deadline_ms=50`) are applied between the stages;
//! an error in an overridden value names the `--set` that supplied it.

pub mod raw;
pub mod swarm;
pub mod validate;

use std::any::Any;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeSeed;
use toml::de::{DeTable, DeValue};

use crate::fault::Fault;
use crate::input::at_offset;
use crate::latency::LatencyDist;
use crate::protocol::NodeId;
use crate::protocol::Protocol;
use crate::sim::world::{Limits, Sim, SimConfig};
use crate::time::Span;
use raw::RawSeed;
use validate::{FieldPath, Invalid, Seg};

/// Upper bounds that keep a typo from asking for the absurd. The network keeps a dense
/// `n x n` link table, so the node count is what bounds memory.
pub const MAX_FOLLOWERS: usize = 511;
pub const MAX_CASES: usize = 1_000;
pub const MAX_FAULTS_PER_CASE: usize = 10_000;
/// Scenario files larger than this are refused before parsing.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// The chapter's six scenarios, as shipped in `scenarios/chapter.toml`.
pub const CHAPTER_TOML: &str = include_str!("../../../../scenarios/chapter.toml");

/// A validated scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    /// A seed the file fixes; `--seed` overrides it.
    pub seed: Option<u64>,
    /// The workload the scenario runs (`protocol = "..."`), with its parameters.
    pub workload: WorkloadConfig,
    /// One-way latency of every link not listed in `links`.
    pub latency: LatencyDist,
    pub links: Vec<(NodeId, NodeId, LatencyDist)>,
    pub limits: Limits,
    pub fault_budget: Option<usize>,
    pub cases: Vec<Case>,
}

/// A workload's configuration, once its table is validated: what the loader and the
/// simulator need to know of it without knowing the workload (see `crate::workload`).
pub trait Config: Any + fmt::Debug + Send + Sync {
    /// The `protocol` value that selects the workload.
    fn protocol(&self) -> &'static str;
    /// The node names, in [`NodeId`] order.
    fn node_names(&self) -> Vec<String>;
    /// How many nodes, counted from the first, a swarm may draw faults on.
    fn fault_targets(&self) -> usize;
    /// The workload's own configuration, to downcast ([`Scenario::config`]).
    fn inner(&self) -> &dyn Any;
    /// Whether `other` is the same workload with the same configuration.
    fn same(&self, other: &dyn Config) -> bool;
}

/// The validated configuration of the workload a scenario runs.
#[derive(Clone)]
pub struct WorkloadConfig(pub Arc<dyn Config>);

impl fmt::Debug for WorkloadConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for WorkloadConfig {
    fn eq(&self, other: &WorkloadConfig) -> bool {
        self.0.same(&*other.0)
    }
}

/// How the loader reads and validates one workload's table (`[quorum]`, `[raft]`, ...).
/// Every `crate::workload::Workload` is one, through a blanket implementation; the
/// loader holds a list of them (a registry) and knows no workload by name.
pub trait TableLoader: Send + Sync {
    /// The `protocol` value that selects the workload, and the name of its table.
    fn name(&self) -> &'static str;
    /// Reads the workload's table from the file's text (so errors keep their spans), or
    /// `None` when the file has none. An error carries the path of the field at fault.
    fn read_text(&self, text: &str) -> Result<Option<Box<dyn Any>>, (String, toml::de::Error)>;
    /// As [`TableLoader::read_text`], from the document with `--set` overrides applied.
    fn read_value(&self, doc: &toml::Value) -> Result<Option<Box<dyn Any>>, (String, toml::de::Error)>;
    /// Validates the table read by `read_*`; `at` is its path, `seed` the file's seed.
    fn validate(&self, table: &dyn Any, at: &FieldPath, seed: Option<u64>) -> Result<Validated, Invalid>;
}

/// A validated workload table.
pub struct Validated {
    pub config: WorkloadConfig,
    /// How long a run lasts when `[limits] max_time_ms` does not say (for workloads that
    /// never go quiet, such as heartbeats), if the workload says.
    pub duration: Option<Span>,
}

/// One row of a scenario: the same cluster under one set of faults.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    pub name: String,
    pub description: Option<String>,
    /// Faults every seed runs with.
    pub faults: Vec<Fault>,
    /// More faults drawn per seed (swarm testing), added after `faults`.
    pub swarm: Option<swarm::Swarm>,
}

/// Why a scenario could not be loaded. Displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read, or is larger than [`MAX_FILE_BYTES`].
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    #[error("{location}: {field}: {message}")]
    Invalid { location: String, field: String, message: String },
}

/// A `--set key=value` override.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    pub key: String,
    pub value: String,
}

/// The most segments a `--set` key may have. The deepest field of a scenario,
/// `cases[0].faults[0].extra.ms`, has six; the bound keeps a key of thousands of segments
/// from building a table nested as deep.
pub const MAX_KEY_SEGMENTS: usize = 16;

impl Override {
    /// Parses `key=value`; the value may itself contain `=`.
    pub fn parse(s: &str) -> Result<Override, String> {
        let quoted = crate::input::elide(s);
        let malformed =
            || format!("--set {quoted:?}: expected key=value with a dotted key such as quorum.deadline_ms=50");
        let Some((k, v)) = s.split_once('=') else { return Err(malformed()) };
        // Count before parsing, so a huge key costs no allocation per segment.
        let segments = k.split(['.', '[']).count();
        if segments > MAX_KEY_SEGMENTS {
            return Err(format!(
                "--set {quoted:?}: the key has {segments} segments; a field path has at most {MAX_KEY_SEGMENTS}"
            ));
        }
        match FieldPath::parse(k.trim()) {
            Some(_) => Ok(Override { key: k.trim().to_owned(), value: v.trim().to_owned() }),
            None => Err(malformed()),
        }
    }

    /// How an error names this override: `--set key=value`, a long value elided.
    fn located(&self) -> String {
        format!("--set {}", crate::input::elide(&self.to_string()))
    }
}

impl std::fmt::Display for Override {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

impl Scenario {
    /// Reads and loads a scenario file (at most [`MAX_FILE_BYTES`] of it are ever read);
    /// `loaders` are the workloads it may run (a registry's).
    pub fn load_in(
        loaders: &[&dyn TableLoader],
        path: &Path,
        overrides: &[Override],
    ) -> Result<Scenario, ScenarioError> {
        let bytes = crate::input::read_bounded(path, MAX_FILE_BYTES, "a scenario file")?;
        Scenario::from_bytes_in(loaders, &path.display().to_string(), &bytes, overrides)
    }

    /// Loads a scenario from the bytes of a file; `file` names it in errors. Bytes that are
    /// not UTF-8 are an error located at the first bad byte.
    pub fn from_bytes_in(
        loaders: &[&dyn TableLoader],
        file: &str,
        bytes: &[u8],
        overrides: &[Override],
    ) -> Result<Scenario, ScenarioError> {
        if bytes.len() > MAX_FILE_BYTES {
            return Err(crate::input::InputError::too_large(file, bytes, MAX_FILE_BYTES, "a scenario file").into());
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            invalid(&at_offset(file, &String::from_utf8_lossy(bytes), e.valid_up_to()), "(file)", "not valid UTF-8")
        })?;
        Scenario::parse_in(loaders, file, text, overrides)
    }

    /// Loads a scenario from text; `file` names it in errors.
    pub fn parse_in(
        loaders: &[&dyn TableLoader],
        file: &str,
        text: &str,
        overrides: &[Override],
    ) -> Result<Scenario, ScenarioError> {
        let names: Vec<&'static str> = loaders.iter().map(|l| l.name()).collect();
        let doc = DeTable::parse(text).map_err(|e| toml_error(file, text, &e, "(syntax)".to_owned()))?;
        // Where a validation error points: at the --set that supplied the field, or at the
        // line and column the field is written on.
        let locate = |Invalid { path, message }: Invalid| {
            let location = if overrides
                .iter()
                .any(|o| FieldPath::parse(&o.key).is_some_and(|k| path.starts_with(&k) || k.starts_with(&path)))
            {
                blame(overrides, &path)
            } else {
                at_offset(file, text, span_of(doc.get_ref(), &path).unwrap_or(0))
            };
            invalid(&location, &path.to_string(), message)
        };
        // The file as written, read first even under --set: an error in what the file says
        // is located in the file (line and column), never blamed on an override.
        let raw = deserialize(
            RawSeed(&names),
            toml::Deserializer::parse(text).map_err(|e| toml_error(file, text, &e, "(syntax)".into()))?,
        )
        .map_err(|(path, e)| toml_error(file, text, &e, path))?;
        let chosen = validate::workload(&raw, loaders);
        let table = match &chosen {
            Ok(loader) => loader.read_text(text).map_err(|(path, e)| toml_error(file, text, &e, path))?,
            // Reported below, unless --set protocol=... mends it.
            Err(_) => None,
        };
        let (raw, loader, table) = if overrides.is_empty() {
            (raw, chosen.map_err(locate)?, table)
        } else {
            let mut table: toml::Table =
                toml::from_str(text).map_err(|e| toml_error(file, text, &e, "(syntax)".into()))?;
            for o in overrides {
                apply_override(&mut table, o)?;
            }
            let doc = toml::Value::Table(table);
            let blamed = |(path, e): (String, toml::de::Error)| {
                let at = blame(overrides, &FieldPath::parse(&path).unwrap_or_default());
                invalid(&at, &path, clean(e.message()))
            };
            let raw = deserialize(RawSeed(&names), doc.clone()).map_err(blamed)?;
            let loader = validate::workload(&raw, loaders).map_err(locate)?;
            let table = loader.read_value(&doc).map_err(blamed)?;
            (raw, loader, table)
        };
        validate::scenario(&raw, loader, table.as_deref(), &names).map_err(locate)
    }

    /// The `protocol` the scenario runs.
    pub fn protocol(&self) -> &'static str {
        self.workload.0.protocol()
    }

    /// The workload's configuration, if it is a `C` (each workload documents its type).
    pub fn config<C: 'static>(&self) -> Option<&C> {
        self.workload.0.inner().downcast_ref()
    }

    /// The node names of this scenario, in [`NodeId`] order (the workload names them).
    pub fn node_names(&self) -> Vec<String> {
        self.workload.0.node_names()
    }

    /// How many nodes, counted from the first, faults may be drawn on by a swarm (Raft's
    /// servers, say, and not its clients).
    pub fn fault_targets(&self) -> usize {
        self.workload.0.fault_targets()
    }

    /// Builds the simulation of case `case` over the given state machines, one per node.
    pub fn build_with<P: Protocol>(&self, nodes: Vec<P>, case: usize, seed: u64) -> Sim<P> {
        Sim::new(self.sim_config(seed, self.node_names()), nodes, self.faults(case, seed))
    }

    /// The simulator's configuration for a run under `seed` with these node names (the
    /// scenario's, or more: nodes added after them, such as `faultline signals`' monitor,
    /// get the default latency).
    pub fn sim_config(&self, seed: u64, names: Vec<String>) -> SimConfig {
        let links = self.links.clone();
        let default = self.latency.clone();
        SimConfig {
            seed,
            limits: self.limits.clone(),
            names,
            latency: Box::new(move |from, to| {
                links
                    .iter()
                    .rev()
                    .find(|(f, t, _)| *f == from && *t == to)
                    .map_or_else(|| default.clone(), |(_, _, d)| d.clone())
            }),
        }
    }

    /// The faults case `case` runs with under `seed`: its fixed faults, then its swarm draw.
    pub fn faults(&self, case: usize, seed: u64) -> Vec<Fault> {
        let c = &self.cases[case];
        let mut faults = c.faults.clone();
        if let Some(sw) = &c.swarm {
            let mut faulty: Vec<NodeId> = faults.iter().map(|f| f.node).collect();
            faulty.sort();
            faulty.dedup();
            faults.extend(swarm::draw(sw, self.fault_targets(), self.fault_budget, &faulty, seed, case));
        }
        faults
    }

    /// One line per fault of case `case` under `seed`, with every parameter: what a run
    /// logs before it starts, so a drawn mix can be read without the trace.
    pub fn describe_faults(&self, case: usize, seed: u64) -> Vec<String> {
        let names = self.node_names();
        self.faults(case, seed).iter().enumerate().map(|(i, f)| crate::fault::describe(i, f, &names)).collect()
    }
}

fn invalid(location: &str, field: &str, message: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid { location: clean(location), field: clean(field), message: clean(&message.into()) }
}

/// Keeps errors to one line (toml's messages can span several) and long values elided.
fn clean(message: &str) -> String {
    crate::input::one_line(message)
}

/// Deserializes with `seed`, and on failure says the path of the field at fault.
pub fn deserialize<'de, S: DeserializeSeed<'de>, D>(seed: S, de: D) -> Result<S::Value, (String, D::Error)>
where
    D: serde::Deserializer<'de>,
{
    let mut track = serde_path_to_error::Track::new();
    seed.deserialize(serde_path_to_error::Deserializer::new(de, &mut track)).map_err(|e| (track.path().to_string(), e))
}

fn toml_error(file: &str, text: &str, e: &toml::de::Error, path: String) -> ScenarioError {
    let message = e.message();
    // serde names an unknown field in its message and gives the path of the table holding
    // it: join the two so the field is named in full.
    // A key that is empty or blank (`"" = 1`) is named quoted, so the field is never blank.
    let quoted = |name: &str| if name.trim().is_empty() { format!("{name:?}") } else { name.to_owned() };
    let field = match message.strip_prefix("unknown field `").and_then(|m| m.split('`').next()).map(quoted) {
        Some(name) if path == "." || path.is_empty() => name,
        Some(name) if *path == name || path.ends_with(&format!(".{name}")) => path,
        Some(name) => format!("{path}.{name}"),
        None if path == "." || path.is_empty() => "(top level)".to_owned(),
        None => path,
    };
    invalid(&at_offset(file, text, e.span().map_or(0, |s| s.start)), &field, message)
}

/// Names the overrides that touched `path` (or all of them when none clearly did).
fn blame(overrides: &[Override], path: &FieldPath) -> String {
    let touching: Vec<String> = overrides
        .iter()
        .filter(|o| FieldPath::parse(&o.key).is_some_and(|k| path.starts_with(&k) || k.starts_with(path)))
        .map(Override::located)
        .collect();
    if touching.is_empty() {
        overrides.iter().map(Override::located).collect::<Vec<_>>().join(" ")
    } else {
        touching.join(" ")
    }
}

/// The byte offset where `path` is written in the document, or where its nearest written
/// ancestor is (a missing field is blamed on the table that lacks it).
fn span_of(doc: &DeTable<'_>, path: &FieldPath) -> Option<usize> {
    let mut best = None;
    let mut table = Some(doc);
    let mut array: Option<&[toml::Spanned<DeValue<'_>>]> = None;
    for seg in &path.0 {
        let value = match (seg, table, array) {
            (Seg::Key(k), Some(t), _) => {
                t.iter().find(|(key, _)| key.get_ref() == k).map(|(key, v)| (key.span().start, v))
            }
            (Seg::Index(i), _, Some(a)) => a.get(*i).map(|v| (v.span().start, v)),
            _ => None,
        };
        let Some((start, value)) = value else { break };
        best = Some(start);
        (table, array) = match value.get_ref() {
            DeValue::Table(t) => (Some(t), None),
            DeValue::Array(a) => (None, Some(&a[..])),
            _ => (None, None),
        };
    }
    best
}

fn apply_override(table: &mut toml::Table, o: &Override) -> Result<(), ScenarioError> {
    let path = FieldPath::parse(&o.key).ok_or_else(|| invalid(&o.located(), &o.key, "not a dotted key"))?;
    let fail = |msg: String| invalid(&o.located(), &path.to_string(), msg);
    let shape = |seg: &Seg| match seg {
        Seg::Key(k) => format!("there is no table here to hold `{k}`"),
        Seg::Index(i) => format!("there is no list here to index with [{i}]"),
    };
    // The value is TOML when it parses as TOML (`50`, `true`, `"x"`, `{ dist = ... }`),
    // and a bare string otherwise (`quorum.data=balance=1`).
    let value = match toml::from_str::<toml::Table>(&format!("v = {}", o.value)).ok().and_then(|mut t| t.remove("v")) {
        Some(v) => v,
        // Digits alone that TOML cannot hold are a number out of range, not a string.
        None if is_integer_literal(&o.value) => {
            return Err(fail(format!(
                "{} is outside the range of a TOML integer ({} ..= {})",
                crate::input::elide(&o.value),
                i64::MIN,
                i64::MAX
            )));
        }
        None => toml::Value::String(o.value.clone()),
    };
    let (last, parents) = path.0.split_last().ok_or_else(|| fail("empty key".into()))?;
    let mut cursor = TableOrArray::Table(table);
    for seg in parents {
        cursor = match (cursor, seg) {
            (TableOrArray::Table(t), Seg::Key(k)) => {
                match t.entry(k.clone()).or_insert_with(|| toml::Value::Table(Default::default())) {
                    toml::Value::Table(t) => TableOrArray::Table(t),
                    toml::Value::Array(a) => TableOrArray::Array(a),
                    _ => return Err(fail(format!("{k} is not a table"))),
                }
            }
            (TableOrArray::Array(a), Seg::Index(i)) => {
                let len = a.len();
                match a.get_mut(*i) {
                    Some(toml::Value::Table(t)) => TableOrArray::Table(t),
                    Some(toml::Value::Array(a)) => TableOrArray::Array(a),
                    Some(_) => return Err(fail(format!("[{i}] is not a table"))),
                    None => return Err(fail(format!("index {i} is out of range (the list has {len})"))),
                }
            }
            (_, seg) => return Err(fail(shape(seg))),
        };
    }
    match (cursor, last) {
        (TableOrArray::Table(t), Seg::Key(k)) => {
            t.insert(k.clone(), value);
        }
        (TableOrArray::Array(a), Seg::Index(i)) => {
            let len = a.len();
            *a.get_mut(*i).ok_or_else(|| fail(format!("index {i} is out of range (the list has {len})")))? = value;
        }
        (_, seg) => return Err(fail(shape(seg))),
    }
    Ok(())
}

/// Whether `s` is written as a whole number: an optional sign, then digits and `_`.
fn is_integer_literal(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    digits.starts_with(|c: char| c.is_ascii_digit()) && digits.chars().all(|c| c.is_ascii_digit() || c == '_')
}

enum TableOrArray<'a> {
    Table(&'a mut toml::Table),
    Array(&'a mut Vec<toml::Value>),
}
