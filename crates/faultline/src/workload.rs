//! One interface for every protocol a scenario can run: a [`Workload`] says how to read and
//! validate its table, names its nodes and which of them faults may target, runs one case
//! under one seed into a report row, lists the properties that row violated, and renders
//! rows and sweep rows. Everything else comes free: scenario files (the loader reads the
//! table through the workload), `run`, `sweep`, `--trace`, `--case`, `--set`, `--vary`,
//! swarms, the exit codes and the `reproduce:` lines (stateright's promise, one actor and
//! the checker comes free, made for failure injection).
//!
//! A [`Registry`] lists the workloads a command line knows (`crate::registry::builtin`
//! for ours); the loader and every command iterate it and name no workload. [`DynWorkload`]
//! is the object-safe face of a workload, implemented for every [`Workload`].
//!
//! Sweeps are one generic fold ([`sweep`]): per (variant, case), seeds run in parallel and
//! each run adds a [`Tally`] (seeds, violating seeds and the first, per-property counts) and
//! the workload's own [`Merge`] figures; every merge is exact and associative and rayon
//! keeps the order of the seeds, so a sweep's output is the same for any thread count.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use crate::check::{Class, Violation};
use crate::observe::Recording;
use crate::scenario::validate::{FieldPath, Invalid};
use crate::scenario::{Config, Scenario, TableLoader, Validated, WorkloadConfig};
use crate::time::{Span, Time};
use crate::trace::Tracer;

/// How a command prints its results.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

/// A validated workload table: the configuration, and how long a run lasts by default.
pub struct Table<C> {
    pub config: C,
    /// A run's length when `[limits] max_time_ms` does not say (a workload that never goes
    /// quiet needs one); `None` keeps the simulator's default.
    pub duration: Option<Span>,
}

/// Figures a sweep adds up over seeds. The merge must be exact and associative (integer
/// sums, minima, concatenation in order): seeds are merged in a tree whose shape depends
/// on the thread count, and the answer must not.
pub trait Merge: Send {
    fn merge(self, other: Self) -> Self;
}

/// A protocol with everything a scenario needs to run it. See the module documentation,
/// and `examples/custom-workload` for a small one written from scratch.
pub trait Workload: Send + Sync + 'static {
    /// The `protocol = "..."` value that selects it, and the name of its table.
    const NAME: &'static str;
    /// One line for `faultline workloads`.
    const SUMMARY: &'static str;
    /// The table as written (serde; deny unknown fields so a misspelt key is an error).
    type Raw: DeserializeOwned + 'static;
    /// The validated configuration.
    type Config: Clone + fmt::Debug + PartialEq + Send + Sync + 'static;
    /// What one case under one seed reports (`faultline run`; serialised for `--format json`).
    type Row: Serialize + Send + 'static;
    /// What one run adds to a sweep row, beyond the generic [`Tally`].
    type Sums: Merge;
    /// One row of `faultline sweep`.
    type SweepRow: Serialize;

    /// Validates the table; `at` is its path (for errors), `seed` the file's seed.
    fn validate(raw: &Self::Raw, at: &FieldPath, seed: Option<u64>) -> Result<Table<Self::Config>, Invalid>;
    /// The node names, in `NodeId` order.
    fn node_names(config: &Self::Config) -> Vec<String>;
    /// How many nodes, counted from the first, a swarm may draw faults on.
    fn fault_targets(config: &Self::Config) -> usize {
        Self::node_names(config).len()
    }
    /// Runs case `case` of `scenario` under `seed`, feeding `tracer` (handed back after).
    /// Build the simulation with [`Scenario::build_with`], so faults, links and limits
    /// come from the scenario.
    fn run(
        scenario: &Scenario,
        config: &Self::Config,
        case: usize,
        seed: u64,
        tracer: Option<Box<dyn Tracer>>,
    ) -> (Self::Row, Option<Box<dyn Tracer>>);
    /// The properties `row` violated (its checkers' findings), the most telling first.
    fn violations(row: &Self::Row) -> Vec<Violation>;

    /// The clients' operation history of the run, for `faultline run --history` (Jepsen's
    /// EDN, which `faultline check` reads); `None` (the default) when the workload keeps
    /// none.
    fn history(_row: &Self::Row) -> Option<crate::linear::History> {
        None
    }

    /// Whether [`Workload::record`] derives signals (it returns `Some`).
    const OBSERVABLE: bool = false;

    /// The run's signals as real observers would see them, and its ground-truth labels
    /// (`faultline signals`, `faultline diagnose --evaluate`), sampled every `interval`
    /// until `until`; `None` (the default) when the workload's nodes cannot be observed
    /// (they do not implement `crate::observe::Monitorable`).
    fn record(
        _scenario: &Scenario,
        _config: &Self::Config,
        _case: usize,
        _seed: u64,
        _interval: Span,
        _until: Time,
    ) -> Option<Recording> {
        None
    }
    /// The rows of a run as a table (after the `seed:` and `drawn:` lines).
    fn table(rows: &[Self::Row]) -> String;
    /// A run's whole output. The default is `seed: N`, the drawn faults and
    /// [`Workload::table`]; or JSON `{ "seed", "drawn", "rows" }`.
    fn render_run(
        scenario: &Scenario,
        seed: u64,
        drawn: &[Drawn],
        rows: &[Self::Row],
        format: Format,
    ) -> serde_json::Result<String> {
        let _ = scenario;
        Ok(match format {
            Format::Table => run_header(seed, drawn) + &Self::table(rows),
            Format::Json => {
                #[derive(Serialize)]
                struct RunOutput<'a, R> {
                    seed: u64,
                    /// Faults drawn by swarm cases (empty when there are none).
                    drawn: &'a [Drawn],
                    rows: &'a [R],
                }
                serde_json::to_string_pretty(&RunOutput { seed, drawn, rows })? + "\n"
            }
        })
    }
    /// What one run adds to its sweep row.
    fn sums(row: &Self::Row) -> Self::Sums;
    /// A sweep row from the generic tally and the merged figures.
    fn sweep_row(tally: &Tally, sums: Self::Sums) -> Self::SweepRow;
    /// Sweep rows as a table (after the `seeds:` line).
    fn sweep_table(rows: &[Self::SweepRow]) -> String;
    /// A sweep's whole output. The default is `seeds: A..B` and [`Workload::sweep_table`];
    /// or JSON `{ "rows", "seeds" }`.
    fn render_sweep(
        scenario: &Scenario,
        seeds: Range<u64>,
        rows: &[Self::SweepRow],
        format: Format,
    ) -> serde_json::Result<String> {
        let _ = scenario;
        Ok(match format {
            Format::Table => format!("seeds: {}..{}\n", seeds.start, seeds.end) + &Self::sweep_table(rows),
            Format::Json => {
                serde_json::to_string_pretty(&serde_json::json!({ "seeds": [seeds.start, seeds.end], "rows": rows }))?
                    + "\n"
            }
        })
    }
}

/// What a run's table starts with: `seed: N`, then a `drawn:` line per fault a swarm case
/// drew (logged before the rows, so a mix is known even when a run is cut short).
pub fn run_header(seed: u64, drawn: &[Drawn]) -> String {
    let mut out = format!("seed: {seed}\n");
    for d in drawn {
        for f in &d.faults {
            out.push_str(&format!("drawn: {} {f}\n", d.case));
        }
    }
    out
}

/// The faults a swarm case drew for a seed, each with every parameter.
#[derive(Clone, Debug, Serialize)]
pub struct Drawn {
    pub case: String,
    pub faults: Vec<String>,
}

/// The faults each swarm case among `cases` drew for `seed`, to print before the rows.
pub fn drawn(s: &Scenario, cases: &[usize], seed: u64) -> Vec<Drawn> {
    cases
        .iter()
        .filter(|&&c| s.cases[c].swarm.is_some())
        .map(|&c| Drawn { case: s.cases[c].name.clone(), faults: s.describe_faults(c, seed) })
        .collect()
}

/// What a sweep row says whatever the workload: per (variant, case), over all seeds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Tally {
    pub case: String,
    /// The varied `key=value`, or `None` when nothing was varied.
    pub vary: Option<String>,
    pub seeds: u64,
    /// Seeds on which some property was violated, and the first such seed.
    pub violating_seeds: u64,
    pub first_violating_seed: Option<u64>,
    /// Per property, the seeds that violated it.
    pub by_property: BTreeMap<&'static str, u64>,
    /// The most serious class violated on any seed.
    pub class: Option<Class>,
}

impl Tally {
    fn of(violations: &[Violation], seed: u64) -> Tally {
        let mut by_property = BTreeMap::new();
        for v in violations {
            by_property.insert(v.property, 1);
        }
        let violated = !violations.is_empty();
        Tally {
            seeds: 1,
            violating_seeds: violated as u64,
            first_violating_seed: violated.then_some(seed),
            by_property,
            class: violations.iter().map(|v| v.class).min(),
            ..Tally::default()
        }
    }

    /// Exact and associative: sums, minima, and per-property sums.
    fn merge(mut self, other: Tally) -> Tally {
        self.seeds += other.seeds;
        self.violating_seeds += other.violating_seeds;
        self.first_violating_seed = match (self.first_violating_seed, other.first_violating_seed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        for (p, n) in other.by_property {
            *self.by_property.entry(p).or_insert(0) += n;
        }
        self.class = match (self.class, other.class) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self
    }
}

/// The one sweep merge: the generic tally and the workload's figures, side by side.
struct Folded<S> {
    tally: Tally,
    sums: Option<S>,
}

impl<S: Merge> Folded<S> {
    fn empty() -> Folded<S> {
        Folded { tally: Tally::default(), sums: None }
    }
    fn merge(self, other: Folded<S>) -> Folded<S> {
        let sums = match (self.sums, other.sums) {
            (Some(a), Some(b)) => Some(a.merge(b)),
            (a, b) => a.or(b),
        };
        Folded { tally: self.tally.merge(other.tally), sums }
    }
}

/// One scenario variant of a sweep: a label (`deadline_ms=50`, or empty) and the scenario.
pub struct Variant {
    pub label: String,
    pub scenario: Scenario,
}

/// The configuration of `scenario`'s workload, if it runs `W`.
pub fn config<W: Workload>(scenario: &Scenario) -> Option<&W::Config> {
    (scenario.protocol() == W::NAME).then(|| scenario.config::<W::Config>()).flatten()
}

fn config_of<W: Workload>(scenario: &Scenario) -> &W::Config {
    config::<W>(scenario).unwrap_or_else(|| {
        panic!(
            "scenario {:?} runs {}, not {}: look its workload up by name",
            scenario.name,
            scenario.protocol(),
            W::NAME
        )
    })
}

/// Runs every case of every variant for every seed in `seeds`, on the current rayon pool:
/// one `(tally, sweep row)` per (variant, case). `progress` is called once per finished
/// run. Memory does not grow with the number of seeds.
///
/// # Panics
/// If a variant runs another workload than `W`.
pub fn sweep<W: Workload>(
    variants: &[Variant],
    seeds: Range<u64>,
    progress: &(dyn Fn() + Sync),
) -> Vec<(Tally, W::SweepRow)> {
    let mut rows = Vec::new();
    for variant in variants {
        let s = &variant.scenario;
        let config = config_of::<W>(s);
        for (c, case) in s.cases.iter().enumerate() {
            let folded = seeds
                .clone()
                .into_par_iter()
                .map(|seed| {
                    let (row, _) = W::run(s, config, c, seed, None);
                    progress();
                    Folded { tally: Tally::of(&W::violations(&row), seed), sums: Some(W::sums(&row)) }
                })
                .reduce(Folded::empty, Folded::merge);
            let mut tally = folded.tally;
            tally.case = case.name.clone();
            tally.vary = (!variant.label.is_empty()).then(|| variant.label.clone());
            let Some(sums) = folded.sums else { continue };
            let row = W::sweep_row(&tally, sums);
            rows.push((tally, row));
        }
    }
    rows
}

/// Where a run's trace goes: a tracer per case, finished after it.
pub trait TraceSink {
    /// A tracer for case `case`, or `None` for no trace.
    fn start(&mut self, scenario: &Scenario, case: usize, seed: u64) -> std::io::Result<Option<Box<dyn Tracer>>>;
    /// Flushes the tracer a case handed back.
    fn finish(&mut self, tracer: Box<dyn Tracer>) -> std::io::Result<()>;
}

/// No trace.
pub struct NoTrace;

impl TraceSink for NoTrace {
    fn start(&mut self, _: &Scenario, _: usize, _: u64) -> std::io::Result<Option<Box<dyn Tracer>>> {
        Ok(None)
    }
    fn finish(&mut self, _: Box<dyn Tracer>) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a run printed, and each case's violations (for the exit code and `reproduce:`).
pub struct Ran {
    pub output: String,
    /// Per case run, in order: its name and its violations.
    pub violations: Vec<(String, Vec<Violation>)>,
    /// Per case run, in order: the clients' history, when the workload keeps one.
    pub histories: Vec<Option<crate::linear::History>>,
}

/// What a sweep printed, and its tallies.
pub struct Swept {
    pub output: String,
    pub tallies: Vec<Tally>,
}

/// The object-safe face of a [`Workload`], which a [`Registry`] holds.
pub trait DynWorkload: TableLoader {
    fn summary(&self) -> &'static str;
    /// Runs `cases` of `scenario` under `seed` and renders them.
    fn run(
        &self,
        scenario: &Scenario,
        cases: &[usize],
        seed: u64,
        format: Format,
        trace: &mut dyn TraceSink,
    ) -> std::io::Result<Ran>;
    /// Sweeps `variants` over `seeds` on the current rayon pool and renders the rows.
    fn sweep(
        &self,
        variants: &[Variant],
        seeds: Range<u64>,
        format: Format,
        progress: &(dyn Fn() + Sync),
    ) -> std::io::Result<Swept>;
    /// Whether `faultline signals` can observe this workload's runs.
    fn observable(&self) -> bool;
    /// [`Workload::record`] for case `case` of `scenario`.
    fn record(&self, scenario: &Scenario, case: usize, seed: u64, interval: Span, until: Time) -> Option<Recording>;
}

/// A workload's configuration behind [`Config`].
struct Loaded<W: Workload>(W::Config);

impl<W: Workload> fmt::Debug for Loaded<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<W: Workload> Config for Loaded<W> {
    fn protocol(&self) -> &'static str {
        W::NAME
    }
    fn node_names(&self) -> Vec<String> {
        W::node_names(&self.0)
    }
    fn fault_targets(&self) -> usize {
        W::fault_targets(&self.0)
    }
    fn inner(&self) -> &dyn Any {
        &self.0
    }
    fn same(&self, other: &dyn Config) -> bool {
        other.protocol() == W::NAME && other.inner().downcast_ref::<W::Config>() == Some(&self.0)
    }
}

/// Reads the table named `.0` from a whole scenario document, ignoring the other keys.
struct TableOf<T>(&'static str, PhantomData<T>);

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for TableOf<T> {
    type Value = Option<T>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for TableOf<T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a scenario with a [{}] table", self.0)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
        let mut table = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == self.0 {
                table = Some(map.next_value::<T>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(table)
    }
}

impl<W: Workload> TableLoader for W {
    fn name(&self) -> &'static str {
        W::NAME
    }
    fn read_text(&self, text: &str) -> Result<Option<Box<dyn Any>>, (String, toml::de::Error)> {
        let de = toml::Deserializer::parse(text).map_err(|e| ("(syntax)".to_owned(), e))?;
        let raw = crate::scenario::deserialize(TableOf::<W::Raw>(W::NAME, PhantomData), de)?;
        Ok(raw.map(|r| Box::new(r) as Box<dyn Any>))
    }
    fn read_value(&self, doc: &toml::Value) -> Result<Option<Box<dyn Any>>, (String, toml::de::Error)> {
        let raw = crate::scenario::deserialize(TableOf::<W::Raw>(W::NAME, PhantomData), doc.clone())?;
        Ok(raw.map(|r| Box::new(r) as Box<dyn Any>))
    }
    fn validate(&self, table: &dyn Any, at: &FieldPath, seed: Option<u64>) -> Result<Validated, Invalid> {
        let raw = table.downcast_ref::<W::Raw>().expect("the table was read by the same workload");
        let t = W::validate(raw, at, seed)?;
        Ok(Validated { config: WorkloadConfig(Arc::new(Loaded::<W>(t.config))), duration: t.duration })
    }
}

impl<W: Workload> DynWorkload for W {
    fn summary(&self) -> &'static str {
        W::SUMMARY
    }

    fn observable(&self) -> bool {
        W::OBSERVABLE
    }

    fn record(&self, scenario: &Scenario, case: usize, seed: u64, interval: Span, until: Time) -> Option<Recording> {
        W::record(scenario, config_of::<W>(scenario), case, seed, interval, until)
    }

    fn run(
        &self,
        scenario: &Scenario,
        cases: &[usize],
        seed: u64,
        format: Format,
        trace: &mut dyn TraceSink,
    ) -> std::io::Result<Ran> {
        let config = config_of::<W>(scenario);
        let mut rows = Vec::with_capacity(cases.len());
        let mut violations = Vec::with_capacity(cases.len());
        let mut histories = Vec::with_capacity(cases.len());
        for &c in cases {
            let tracer = trace.start(scenario, c, seed)?;
            let wanted = tracer.is_some();
            let (row, tracer) = W::run(scenario, config, c, seed, tracer);
            match tracer {
                Some(t) => trace.finish(t)?,
                // A trace asked for and never handed back would be lost without a word.
                None if wanted => {
                    return Err(std::io::Error::other(format!(
                        "workload {} did not hand its tracer back, so its trace was not written",
                        W::NAME
                    )));
                }
                None => {}
            }
            violations.push((scenario.cases[c].name.clone(), W::violations(&row)));
            histories.push(W::history(&row));
            rows.push(row);
        }
        let output = W::render_run(scenario, seed, &drawn(scenario, cases, seed), &rows, format)?;
        Ok(Ran { output, violations, histories })
    }

    fn sweep(
        &self,
        variants: &[Variant],
        seeds: Range<u64>,
        format: Format,
        progress: &(dyn Fn() + Sync),
    ) -> std::io::Result<Swept> {
        let (tallies, rows): (Vec<Tally>, Vec<W::SweepRow>) =
            sweep::<W>(variants, seeds.clone(), progress).into_iter().unzip();
        let output = W::render_sweep(&variants[0].scenario, seeds, &rows, format)?;
        Ok(Swept { output, tallies })
    }
}

/// The workloads a command line knows, in the order `faultline workloads` lists them; the
/// first is the one a scenario without `protocol = "..."` runs.
#[derive(Clone)]
pub struct Registry {
    workloads: Vec<&'static dyn DynWorkload>,
}

impl Registry {
    /// A registry of no workloads (add them with [`Registry::with`]).
    pub fn empty() -> Registry {
        Registry { workloads: Vec::new() }
    }

    /// Adds `workload` (a unit struct implementing [`Workload`], passed as `&MyWorkload`).
    ///
    /// # Panics
    /// If a workload of the same name is registered already, or the name is one of a
    /// scenario file's own top-level keys (`network`, `limits`, `cases`, ...): its table
    /// could not be told apart from theirs.
    pub fn with(mut self, workload: &'static dyn DynWorkload) -> Registry {
        let name = workload.name();
        assert!(self.get(name).is_none(), "two workloads are named {name:?}");
        assert!(
            !crate::scenario::raw::FIELDS.contains(&name),
            "a workload may not be named {name:?}: that is a scenario file's own key"
        );
        self.workloads.push(workload);
        self
    }

    pub fn get(&self, name: &str) -> Option<&'static dyn DynWorkload> {
        self.workloads.iter().copied().find(|w| w.name() == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &'static dyn DynWorkload> + '_ {
        self.workloads.iter().copied()
    }

    /// The loaders the scenario loader takes.
    pub fn loaders(&self) -> Vec<&dyn TableLoader> {
        self.workloads.iter().map(|&w| w as &dyn TableLoader).collect()
    }

    /// Loads a scenario file with these workloads.
    pub fn load(
        &self,
        path: &std::path::Path,
        overrides: &[crate::scenario::Override],
    ) -> Result<Scenario, crate::scenario::ScenarioError> {
        Scenario::load_in(&self.loaders(), path, overrides)
    }

    /// Loads a scenario from text with these workloads; `file` names it in errors.
    pub fn parse(
        &self,
        file: &str,
        text: &str,
        overrides: &[crate::scenario::Override],
    ) -> Result<Scenario, crate::scenario::ScenarioError> {
        Scenario::parse_in(&self.loaders(), file, text, overrides)
    }

    /// The workload `scenario` runs.
    ///
    /// # Panics
    /// If it is not registered here (a scenario is loaded through the registry that runs it).
    pub fn of(&self, scenario: &Scenario) -> &'static dyn DynWorkload {
        self.get(scenario.protocol()).unwrap_or_else(|| panic!("workload {:?} is not registered", scenario.protocol()))
    }
}
