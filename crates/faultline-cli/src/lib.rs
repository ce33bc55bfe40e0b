//! The `faultline` command line, as a library: [`main`] takes the registry of workloads
//! it runs, so a crate with a protocol of its own gets the real command line (scenario
//! files, `run`, `sweep`, `--trace`, `--case`, `--set`, `--vary`, exit codes) by
//! registering it (see `examples/custom-workload`). The `faultline` binary is
//! `faultline_cli::main(faultline::registry::builtin())`.
//!
//! `main` parses, runs the command, and turns the outcome into an exit code (ripgrep's
//! `main` → `run` → exit code); the commands know workloads only through the registry.
//!
//! Exit codes: 0 ok, 1 a safety property was violated, 2 bad input, usage or I/O error (a
//! run past its memory budget included), 3 only liveness properties were violated (a
//! workload that stopped making progress after its faults healed). Wall-clock reads live
//! here (seed picking, benchmark timing), never in the library; so do the threads that
//! watch for signals and memory.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use faultline::check::{Class, Violation};
use faultline::detect::eval::{self, DetectorKind};
use faultline::protocols::quorum::{self, report::Row};
use faultline::scenario::{Override, Scenario};
use faultline::trace::{NdjsonTracer, Tracer};
use faultline::workload::{Format as LibFormat, Registry, Tally, TraceSink, Variant};
use serde::Serialize;

mod budget;
mod check;
mod cluster;
mod diagnose;
mod output;
mod plot;
mod proxy;
mod tolerance;

/// The exit codes, as every `--help` ends.
const EXIT_CODES: &str = "Exit codes: 0 ok; 1 a safety property was violated; 2 bad input, usage or I/O error \
(a run past its memory budget too); 3 only liveness properties were violated (no progress after the faults healed).";

#[derive(Parser)]
#[command(
    name = "faultline",
    version,
    about = "See, test and diagnose crash, omission, timing and Byzantine failures",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Stop with exit code 2 when the process's resident memory passes this many MiB.
    /// Default: half the machine's memory, at most 8192.
    #[arg(long, global = true, value_name = "MIB", value_parser = clap::value_parser!(u64).range(16..=budget::MAX_MB))]
    memory_mb: Option<u64>,
}

/// The largest seed: TOML integers are signed 64-bit, so this is the largest a scenario
/// file can name, and every seed the command takes or prints can be written in one.
const MAX_SEED: u64 = i64::MAX as u64;
/// The most seeds one `--seeds` range may cover.
const MAX_SEEDS: u64 = 1_000_000_000;
/// The most worker threads `--threads` may ask for.
const MAX_THREADS: u64 = 1024;
/// The most values one `--vary` or `--threshold` list may give.
const MAX_LIST_VALUES: usize = 1000;
/// The default and the largest `--trace-max-mb`.
const TRACE_MAX_MB: u64 = 4096;
const TRACE_MAX_MB_LIMIT: u64 = 1 << 20;

fn seed_arg() -> clap::builder::RangedU64ValueParser {
    clap::value_parser!(u64).range(0..=MAX_SEED)
}

fn threads_arg() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_THREADS)
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
}

/// The models `faultline check` knows.
#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum Model {
    Register,
    Kv,
}

/// The history formats `faultline check` reads.
#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum HistoryInput {
    Edn,
    Jsonl,
}

const CHECK_EXIT_CODES: &str = "Exit codes: 0 linearizable; 1 not linearizable; 2 bad input, usage or I/O error; \
3 unknown (the --timeout or the memory budget ran out first: nothing is claimed).";

/// The signals formats (docs/signals.md).
#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum InputFormat {
    Csv,
    Ndjson,
    Prometheus,
    QueryRange,
}

impl InputFormat {
    fn signals(self) -> faultline::signals::parse::Format {
        use faultline::signals::parse::Format as F;
        match self {
            InputFormat::Csv => F::Csv,
            InputFormat::Ndjson => F::Ndjson,
            InputFormat::Prometheus => F::Prometheus,
            InputFormat::QueryRange => F::QueryRange,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the chapter's six scenarios (embedded) against the naive quorum coordinator, or,
    /// with --coordinator, the extended table (twelve scenarios) against a chosen one.
    #[command(after_help = EXIT_CODES)]
    Demo {
        /// Root seed; the chapter's is 7.
        #[arg(long, default_value_t = 7, value_parser = seed_arg())]
        seed: u64,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Run the extended table (scenarios/chapter-extended.toml, embedded) against this
        /// coordinator: the chapter's six rows plus byzantine-2, flip, equivocate, lie, stale
        /// and forge.
        #[arg(long, value_name = "NAME", value_parser = coordinator_names())]
        coordinator: Option<String>,
    },
    /// Run a scenario file, one row per case.
    #[command(after_help = EXIT_CODES)]
    Run {
        scenario: PathBuf,
        /// Root seed (0 to 2^63-1); defaults to the file's `seed`, else one is picked and
        /// printed.
        #[arg(long, value_parser = seed_arg())]
        seed: Option<u64>,
        /// Override a scenario field by its dotted path, e.g. quorum.deadline_ms=50.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = Override::parse)]
        overrides: Vec<Override>,
        /// Run only the case with this name.
        #[arg(long)]
        case: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Write every event as NDJSON to this file (written atomically; `-` is standard
        /// output, and the results then go to standard error).
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        /// The largest trace, in MiB: a run whose trace would pass it fails (exit 2) and
        /// leaves no partial file.
        #[arg(long, value_name = "MIB", default_value_t = TRACE_MAX_MB, value_parser = clap::value_parser!(u64).range(1..=TRACE_MAX_MB_LIMIT))]
        trace_max_mb: u64,
        /// Write the clients' operation history to this file as Jepsen's EDN, which
        /// `faultline check` (and Knossos or Porcupine) reads. One case: name it with --case
        /// when the scenario has several. Workloads with clients only (Raft).
        #[arg(long, value_name = "FILE")]
        history: Option<PathBuf>,
    },
    /// Run a scenario over a range of seeds, optionally varying one field.
    #[command(after_help = EXIT_CODES)]
    Sweep {
        scenario: PathBuf,
        /// Seeds as A..B (B excluded) or A..=B (B included).
        #[arg(long, value_parser = parse_seeds)]
        seeds: SeedRange,
        /// Vary one field over values: key=v1,v2,...
        #[arg(long, value_name = "KEY=V1,V2,...")]
        vary: Option<String>,
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = Override::parse)]
        overrides: Vec<Override>,
        /// Worker threads, 1 to 1024 (results do not depend on it); defaults to the number
        /// of cores.
        #[arg(long, value_parser = threads_arg())]
        threads: Option<usize>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Measure failure detectors on a heartbeat scenario: detection time, mistake
    /// recurrence and duration, query accuracy (Chen, Toueg and Aguilera), per detector and
    /// threshold, over a range of seeds.
    #[command(after_help = EXIT_CODES)]
    Detect {
        scenario: PathBuf,
        /// Detectors, comma-separated: timeout, phi, cassandra, swim, probe. Default: the
        /// heartbeat detectors and swim.
        #[arg(long, value_delimiter = ',', value_parser = detector_names())]
        detector: Vec<String>,
        /// Thresholds, comma-separated, for every detector named (timeout: ms; phi and
        /// cassandra: phi; swim: suspicion multiplier; probe: failed probes in a row), or
        /// for one detector as NAME=V1,V2 (repeat the flag for others). Default: ten per
        /// detector.
        #[arg(long, value_name = "[NAME=]V1,V2,...")]
        threshold: Vec<String>,
        /// Seeds as A..B (B excluded) or A..=B (B included).
        #[arg(long, value_parser = parse_seeds, default_value = "1..101")]
        seeds: SeedRange,
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = Override::parse)]
        overrides: Vec<Override>,
        /// Worker threads, 1 to 1024 (results do not depend on it); defaults to the number
        /// of cores.
        #[arg(long, value_parser = threads_arg())]
        threads: Option<usize>,
        #[arg(long, value_enum, default_value_t = DetectFormat::Table)]
        format: DetectFormat,
        /// Also draw detection time against mistake rate per detector, as SVG (written
        /// atomically; `-` is standard output, and the table then goes to standard error).
        #[arg(long, value_name = "FILE")]
        plot: Option<PathBuf>,
    },
    /// Derive monitoring signals from a simulated run (quorum and Raft scenarios), as real
    /// observers would see them: the leader, a load balancer's health checker, a client's
    /// read prober, each replica's kernel and an audit of its disk (docs/signals.md).
    #[command(after_help = EXIT_CODES)]
    Signals {
        scenario: PathBuf,
        /// Root seed; defaults to the file's `seed`, else one is picked and printed.
        #[arg(long, value_parser = seed_arg())]
        seed: Option<u64>,
        /// The case to run (default: the first).
        #[arg(long)]
        case: Option<String>,
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = Override::parse)]
        overrides: Vec<Override>,
        /// Where the signals go, as long CSV (written atomically; `-` is standard output).
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Also write the ground truth (per replica and interval: the faults in force and
        /// their models) to this file, as CSV.
        #[arg(long, value_name = "FILE")]
        labels: Option<PathBuf>,
        /// How often the observers sample, in milliseconds of virtual time.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
        interval_ms: u64,
        /// How long to observe, in milliseconds of virtual time (default: the run's time
        /// limit, at most 60 s).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
        duration_ms: Option<u64>,
    },
    /// Name the failure model each replica is in from monitoring signals (CSV, NDJSON,
    /// Prometheus text or query_range JSON; see docs/signals.md), with its evidence, a
    /// confidence and the runbook step, and how many more failures the cluster absorbs
    /// (the decision tree: docs/diagnosis.md).
    #[command(after_help = EXIT_CODES)]
    Diagnose {
        /// Signals files, merged in time order; `-` is standard input. With --evaluate:
        /// scenario files or folders of them (default: the built-in suite,
        /// scenarios/diagnosis/suite.toml).
        files: Vec<PathBuf>,
        /// Measure the diagnoser against ground truth: run the scenarios' cases over
        /// --seeds with the observers attached, diagnose every interval, and score the
        /// verdicts beside a heartbeat-only baseline (docs/diagnosis.md, "Measured").
        #[arg(long)]
        evaluate: bool,
        /// With --evaluate: seeds as A..B (B excluded) or A..=B (B included).
        #[arg(long, value_parser = parse_seeds, default_value = "1..11")]
        seeds: SeedRange,
        /// With --evaluate: worker threads, 1 to 1024 (results do not depend on it).
        #[arg(long, value_parser = threads_arg())]
        threads: Option<usize>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Diagnose as of this time (seconds, on the files' clock): later samples are not read.
        #[arg(long, value_name = "T", allow_negative_numbers = true)]
        at: Option<f64>,
        /// Keep reading a growing file (or standard input until it closes), printing a new
        /// diagnosis whenever a verdict changes (JSON: one object per line).
        #[arg(long)]
        follow: bool,
        /// The files' format (default: from the extension, else from the first bytes).
        #[arg(long, value_enum, value_name = "FORMAT")]
        input_format: Option<InputFormat>,
    },
    /// Check a history for linearizability: is there one order of its operations,
    /// consistent with real time, that the model allows? Reads Jepsen's EDN (one map per
    /// line) or the same as JSON lines, including what `faultline run --history` writes;
    /// each key is checked apart, in parallel (docs/linearizability.md).
    #[command(after_help = CHECK_EXIT_CODES)]
    Check {
        /// History files, each checked on its own; `-` is standard input.
        #[arg(required = true)]
        histories: Vec<PathBuf>,
        /// The sequential specification: a register per key (read, write, cas) or a
        /// key-value store of strings (get, put, append).
        #[arg(long, value_enum, default_value_t = Model::Register)]
        model: Model,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Give up after this many seconds per history: the verdict is then unknown
        /// (exit 3), never a guess.
        #[arg(long, value_name = "S", default_value_t = 60.0)]
        timeout: f64,
        /// Draw the counterexample's timeline as SVG to this file (written atomically).
        #[arg(long, value_name = "FILE")]
        plot: Option<PathBuf>,
        /// The files' format (default: from the extension, else from the first bytes).
        #[arg(long, value_enum, value_name = "FORMAT")]
        input_format: Option<HistoryInput>,
    },
    /// Run a real etcd cluster (3 or 5 members on loopback, Debian's etcd-server) under a
    /// scenario's faults: a register workload through etcd's v3 API, a nemesis on the wall
    /// clock, monitoring scraped into signals; writes the history (Jepsen's EDN), the
    /// nemesis log, each member's log, the signals and a report with `faultline check`'s
    /// verdict and `faultline diagnose`'s scored verdicts (docs/real.md).
    #[command(after_help = cluster::EXIT_CODES)]
    Cluster {
        /// A real-cluster scenario (scenarios/real/*.toml).
        scenario: PathBuf,
        /// Run only the case with this name (default: every case, one after another).
        #[arg(long)]
        case: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// The output directory: each case writes into <DIR>/<scenario>/<case>.
        #[arg(long, value_name = "DIR", default_value = "faultline-cluster")]
        out: PathBuf,
        /// Keep the members' data directories (they are removed otherwise).
        #[arg(long)]
        keep: bool,
        /// The workload's seed (default: the scenario's): the clients' operation sequence.
        #[arg(long, value_parser = seed_arg())]
        seed: Option<u64>,
    },
    /// List the workloads this command line runs: each `protocol = "..."` a scenario may
    /// name (the first is the default), with what it is.
    #[command(after_help = EXIT_CODES)]
    Workloads {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// List the fault catalogue: every fault kind a scenario can inject.
    #[command(after_help = EXIT_CODES)]
    Faults {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// The tolerance table: for each protocol, failure model, cluster size n and number of
    /// faulty replicas k, whether safety and liveness held over the seeds (docs/pbft.md).
    /// Exit 0 whatever the cells say: the table is the result.
    #[command(after_help = EXIT_CODES)]
    Tolerance {
        /// Protocols, comma-separated: naive-quorum, content-quorum, raft, pbft.
        #[arg(long, value_name = "P,P,...", default_value = "naive-quorum,content-quorum,raft,pbft", value_parser = parse_protocols)]
        protocols: ProtocolList,
        /// Cluster sizes: A..B (both included), or a list such as 4,7,10.
        #[arg(long = "n", value_name = "A..B", default_value = "3..7", value_parser = parse_ns)]
        ns: NList,
        /// Seeds per cell, as A..B (B excluded) or A..=B.
        #[arg(long, default_value = "1..101", value_parser = parse_seeds)]
        seeds: SeedRange,
        #[arg(long, value_enum, default_value_t = TableFormat::Table)]
        format: TableFormat,
        /// Draw the table as SVG to this file (written atomically).
        #[arg(long, value_name = "FILE")]
        plot: Option<PathBuf>,
        /// Worker threads (results do not depend on it); defaults to the number of cores.
        #[arg(long, value_parser = threads_arg())]
        threads: Option<usize>,
        /// Print one cell's scenario file instead (PROTOCOL:MODEL:N:K, e.g.
        /// pbft:byzantine:6:2) for --seed, to run, trace or change by hand.
        #[arg(long, value_name = "CELL", value_parser = faultline::tolerance::Cell::parse)]
        emit: Option<faultline::tolerance::Cell>,
        /// The seed --emit writes the scenario for.
        #[arg(long, default_value_t = 1, value_parser = seed_arg())]
        seed: u64,
    },
    /// What Byzantine tolerance costs: PBFT against Raft on one healthy request stream, per
    /// request: messages (between replicas, and in all), bytes, authenticator operations and
    /// CPU time (docs/pbft.md).
    #[command(after_help = EXIT_CODES)]
    Costs {
        /// Cluster sizes: a list such as 4,7,10, or A..B (both included).
        #[arg(long = "n", value_name = "N,N,...", default_value = "4,7,10", value_parser = parse_ns)]
        ns: NList,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// How PBFT authenticates its messages.
        #[arg(long, value_enum, default_value_t = AuthArg::Hmac)]
        auth: AuthArg,
    },
    /// Time a scenario with tracing off: rounds, events, and their rates.
    #[command(after_help = EXIT_CODES)]
    Bench {
        scenario: PathBuf,
        /// Rounds per case (overrides quorum.rounds).
        #[arg(long)]
        rounds: Option<u64>,
        #[arg(long, value_parser = seed_arg())]
        seed: Option<u64>,
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = Override::parse)]
        overrides: Vec<Override>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Run a fault-injecting TCP proxy (docs/proxy.md) from FILE until Ctrl-C; its faults
    /// change at run time through its HTTP/JSON control API.
    #[command(after_help = EXIT_CODES)]
    Proxy {
        config: PathBuf,
        /// Seed of the faults' draws (default: the file's, else a fresh one, printed).
        #[arg(long, value_parser = seed_arg())]
        seed: Option<u64>,
    },
}

/// The chapter's table, extended: `faultline demo --coordinator`.
const CHAPTER_EXTENDED_TOML: &str = include_str!("../../../scenarios/chapter-extended.toml");

/// The most samples `faultline signals` writes (about 2 GiB held in memory).
const MAX_SIGNAL_SAMPLES: u64 = 20_000_000;

/// The diagnoser's built-in suite: `faultline diagnose --evaluate` with no scenario named.
const SUITE_TOML: &str = include_str!("../../../scenarios/diagnosis/suite.toml");

fn detector_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(DetectorKind::ALL.map(|k| k.name()))
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
enum DetectFormat {
    Table,
    Json,
    Csv,
}

impl From<DetectFormat> for eval::DetectFormat {
    fn from(f: DetectFormat) -> eval::DetectFormat {
        match f {
            DetectFormat::Table => eval::DetectFormat::Table,
            DetectFormat::Json => eval::DetectFormat::Json,
            DetectFormat::Csv => eval::DetectFormat::Csv,
        }
    }
}

impl From<Format> for LibFormat {
    fn from(f: Format) -> LibFormat {
        match f {
            Format::Table => LibFormat::Table,
            Format::Json => LibFormat::Json,
        }
    }
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum TableFormat {
    Table,
    Json,
    Csv,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum AuthArg {
    Hmac,
    Ed25519,
}

#[derive(Clone, Debug)]
struct ProtocolList(Vec<faultline::tolerance::Protocol>);

fn parse_protocols(s: &str) -> Result<ProtocolList, String> {
    use faultline::tolerance::Protocol;
    let mut out = Vec::new();
    for name in s.split(',') {
        let p = Protocol::parse(name.trim()).ok_or_else(|| {
            format!("{name:?} is not a protocol (expected {})", Protocol::ALL.map(Protocol::name).join(", "))
        })?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(ProtocolList(out))
}

#[derive(Clone, Debug)]
struct NList(Vec<usize>);

/// `A..B` or `A..=B` (both include B: cluster sizes are named by their ends), or `a,b,c`.
fn parse_ns(s: &str) -> Result<NList, String> {
    use faultline::tolerance::{MAX_N, MIN_N};
    let bad =
        || format!("{s:?}: expected A..B (both included) or a list such as 4,7,10, with sizes {MIN_N} to {MAX_N}");
    let num = |t: &str| t.trim().parse::<usize>().ok().filter(|n| (MIN_N..=MAX_N).contains(n)).ok_or_else(bad);
    let mut ns = match s.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b.trim_start_matches('='))?);
            if a > b {
                return Err(bad());
            }
            (a..=b).collect()
        }
        None => s.split(',').map(num).collect::<Result<Vec<_>, _>>()?,
    };
    ns.sort_unstable();
    ns.dedup();
    Ok(NList(ns))
}

fn coordinator_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(faultline::protocols::quorum::Coordinator::ALL.map(|c| c.name()))
}

#[derive(Clone, Debug)]
struct SeedRange(std::ops::Range<u64>);

/// Parses `A..B` (B excluded) or `A..=B` (B included): seeds from 0 to 2^63-1, at most
/// [`MAX_SEEDS`] of them.
fn parse_seeds(s: &str) -> Result<SeedRange, String> {
    let bad = || format!("{s:?}: expected A..B or A..=B, e.g. 1..1001");
    let (a, b, inclusive) = match s.split_once("..=") {
        Some((a, b)) => (a, b, true),
        None => {
            let (a, b) = s.split_once("..").ok_or_else(bad)?;
            (a, b, false)
        }
    };
    let seed = |v: &str| -> Result<u64, String> {
        let v = v.trim();
        match v.parse::<u64>() {
            Ok(n) if n <= MAX_SEED => Ok(n),
            // Digits too large for a seed: say so rather than "expected A..B".
            _ if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                Err(format!("{s:?}: seed {} is above the largest seed, {MAX_SEED}", faultline::input::elide(v)))
            }
            _ => Err(bad()),
        }
    };
    let (a, b) = (seed(a)?, seed(b)?);
    let end = if inclusive { b + 1 } else { b };
    if end <= a {
        return Err(format!("{s:?}: the range is empty"));
    }
    if end - a > MAX_SEEDS {
        return Err(format!("{s:?}: {} seeds; one range covers at most {MAX_SEEDS}", end - a));
    }
    Ok(SeedRange(a..end))
}

/// How a command ended when it did not fail outright.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Ok,
    /// Only liveness properties were violated (or, for `check`, the verdict is unknown):
    /// exit code 3.
    Stalled,
    /// A safety property was violated: exit code 1, whatever else happened.
    Violated,
}

impl Outcome {
    fn of(class: Class) -> Outcome {
        match class {
            Class::Always => Outcome::Violated,
            Class::Eventually => Outcome::Stalled,
        }
    }
}

/// Output goes to a buffer written once at the end, so that a closed pipe (`| head`) ends
/// the program quietly instead of panicking in `println!`.
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

macro_rules! outp {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = write!($out, $($arg)*);
    }};
}

/// Runs the command line over `registry`'s workloads and returns the exit code.
pub fn main(registry: &Registry) -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    // The proxy runs until a signal and shuts down cleanly on it: it takes the signals itself.
    let own_signals = matches!(cli.command, Command::Proxy { .. });
    if let Err(e) =
        output::check_stdout_open().and_then(|()| if own_signals { Ok(()) } else { output::install_cleanup() })
    {
        return fail(&e);
    }
    let budget_mb = cli.memory_mb.unwrap_or_else(budget::default_mb);
    budget::watch(budget_mb, cli.memory_mb.is_some());
    // A trace or plot on standard output takes it; the results then go to standard error.
    let results_to_stderr = match &cli.command {
        Command::Run { trace: Some(p), .. } | Command::Detect { plot: Some(p), .. } => output::is_stdout(p),
        _ => false,
    };
    let mut out = String::new();
    let result = execute(registry, cli.command, budget_mb, &mut out);
    if results_to_stderr {
        let _ = std::io::stderr().lock().write_all(out.as_bytes());
    } else if let Err(e) = output::print(out.as_bytes()) {
        return fail(&e);
    }
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Violated) => ExitCode::from(1),
        Ok(Outcome::Stalled) => ExitCode::from(3),
        Err(e) => fail(&e),
    }
}

/// Prints help or the version as clap does; a usage error becomes one `error:` line (clap's
/// first paragraph, folded) and exit 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(e.exit_code() as u8);
    }
    let rendered = e.render().to_string();
    let first = rendered.split("\n\n").next().unwrap_or_default();
    output::eprint_line(&format!("{} (see --help)", faultline::input::one_line(first)));
    ExitCode::from(2)
}

/// Reports a failed command as one `error:` line and exits 2.
fn fail(e: &anyhow::Error) -> ExitCode {
    output::eprint_line(&format!("error: {}", faultline::input::one_line(&format!("{e:#}"))));
    ExitCode::from(2)
}

fn execute(registry: &Registry, command: Command, budget_mb: u64, out: &mut String) -> Result<Outcome> {
    match command {
        Command::Demo { seed, format, coordinator } => {
            let (scenario, reproduce) = match &coordinator {
                // The demo's scenarios ship as files too: a failing case replays with `run`,
                // which takes --case.
                None => (Scenario::chapter(), format!("{} run scenarios/chapter.toml --seed {seed}", program())),
                Some(name) => {
                    let choice = Override { key: "quorum.coordinator".into(), value: format!("{name:?}") };
                    (
                        Scenario::parse("scenarios/chapter-extended.toml", CHAPTER_EXTENDED_TOML, &[choice])?,
                        format!(
                            "{} run scenarios/chapter-extended.toml --seed {seed} --set quorum.coordinator={}",
                            program(),
                            shell_quote(name)
                        ),
                    )
                }
            };
            let cases: Vec<usize> = (0..scenario.cases.len()).collect();
            let ran = faultline::workload::DynWorkload::run(
                &quorum::Quorum,
                &scenario,
                &cases,
                seed,
                format.into(),
                &mut faultline::workload::NoTrace,
            )?;
            outp!(out, "{}", ran.output);
            Ok(verdict(&ran.violations, &reproduce))
        }
        Command::Run { scenario, seed, overrides, case, format, trace, trace_max_mb, history } => {
            for path in [&trace, &history].into_iter().flatten() {
                output::check_output(path, &[&scenario])?;
            }
            let s = registry.load(&scenario, &overrides)?;
            let seed = pick_seed(seed, &s);
            let cases: Vec<usize> = match &case {
                None => (0..s.cases.len()).collect(),
                Some(name) => match s.cases.iter().position(|c| &c.name == name) {
                    Some(i) => vec![i],
                    None => bail!(
                        "{}: --case {name:?}: no such case (cases: {})",
                        scenario.display(),
                        s.cases.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                },
            };
            if history.is_some() && cases.len() != 1 {
                bail!(
                    "{}: --history writes one case's history; the scenario has {}: name one with --case",
                    scenario.display(),
                    cases.len()
                );
            }
            let workload = registry.of(&s);
            let ran = match &trace {
                None => workload.run(&s, &cases, seed, format.into(), &mut faultline::workload::NoTrace)?,
                Some(path) => output::write_output(path, &[&scenario], |file| {
                    let budget = output::Capped::new(std::io::sink(), trace_max_mb, "--trace-max-mb");
                    let mut sink = FileTrace { file, budget };
                    workload.run(&s, &cases, seed, format.into(), &mut sink).context("writing the trace")
                })?,
            };
            if let Some(path) = &history {
                let [Some(h)] = &ran.histories[..] else {
                    bail!("--history: the {} workload keeps no client history", s.protocol());
                };
                output::write_output(path, &[&scenario], |f| Ok(f.write_all(h.to_edn().as_bytes())?))?;
            }
            outp!(out, "{}", ran.output);
            Ok(verdict(&ran.violations, &reproduce_run(&scenario, seed, &overrides)))
        }
        Command::Sweep { scenario, seeds, vary, overrides, threads, format } => {
            let variants = variants(registry, &scenario, &overrides, vary.as_deref())?;
            let workload = registry.of(&variants[0].scenario);
            let jobs =
                variants.iter().map(|v| v.scenario.cases.len() as u64).sum::<u64>() * (seeds.0.end - seeds.0.start);
            let bar = progress_bar(jobs);
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads.unwrap_or(0)).build()?;
            let swept = pool.install(|| workload.sweep(&variants, seeds.0.clone(), format.into(), &|| bar.inc(1)))?;
            bar.finish_and_clear();
            outp!(out, "{}", swept.output);
            // A sweep that found a violation fails like a run would, and says how to replay
            // the first violating seed of each row.
            Ok(sweep_verdict(&scenario, &overrides, &swept.tallies))
        }
        Command::Detect { scenario, detector, threshold, seeds, overrides, threads, format, plot } => {
            if let Some(path) = &plot {
                output::check_output(path, &[&scenario])?;
            }
            let s = registry.load(&scenario, &overrides)?;
            let h = eval::heartbeat_config(&s).map_err(|e| anyhow::anyhow!("{}: {e}", scenario.display()))?;
            let kinds: Vec<DetectorKind> = if detector.is_empty() {
                let mut k = vec![DetectorKind::Timeout, DetectorKind::Phi, DetectorKind::Cassandra];
                k.extend(h.swim.is_some().then_some(DetectorKind::Swim));
                k.extend(h.data_probe.is_some().then_some(DetectorKind::Probe));
                k
            } else {
                let mut k: Vec<DetectorKind> = Vec::new();
                for d in detector.iter().filter_map(|d| DetectorKind::parse(d)) {
                    if !k.contains(&d) {
                        k.push(d);
                    }
                }
                k
            };
            let mut shared: Option<Vec<f64>> = None;
            let mut named: Vec<(DetectorKind, Vec<f64>)> = Vec::new();
            for t in &threshold {
                let (kind, values) = match t.split_once('=') {
                    Some((name, values)) => {
                        let kind = DetectorKind::parse(name.trim()).ok_or_else(|| {
                            anyhow::anyhow!(
                                "--threshold {t:?}: no detector {name:?} (timeout, phi, cassandra, swim, probe)"
                            )
                        })?;
                        (Some(kind), values)
                    }
                    None => (None, t.as_str()),
                };
                let t = faultline::input::elide(t);
                let values = values
                    .split(',')
                    .map(|v| {
                        v.trim().parse::<f64>().map_err(|_| {
                            anyhow::anyhow!(
                                "--threshold {t:?}: {:?} is not a number",
                                faultline::input::elide(v.trim())
                            )
                        })
                    })
                    .collect::<Result<Vec<f64>>>()?;
                let given = match kind {
                    Some(k) => named.iter().find(|(n, _)| *n == k).map_or(0, |(_, l)| l.len()),
                    None => shared.as_ref().map_or(0, Vec::len),
                };
                if given + values.len() > MAX_LIST_VALUES {
                    bail!("--threshold {t:?}: more than {MAX_LIST_VALUES} thresholds for one detector");
                }
                match kind {
                    // Repeating a detector adds to its list.
                    Some(k) => match named.iter_mut().find(|(n, _)| *n == k) {
                        Some((_, list)) => list.extend(values),
                        None => named.push((k, values)),
                    },
                    None => shared.get_or_insert_with(Vec::new).extend(values),
                }
            }
            let mut kinds = kinds;
            for (k, _) in &named {
                if !kinds.contains(k) {
                    if !detector.is_empty() {
                        bail!("--threshold: thresholds for {k}, which --detector does not name");
                    }
                    kinds.push(*k);
                }
            }
            if !named.is_empty() && detector.is_empty() && shared.is_none() {
                // Only named thresholds: measure just those detectors.
                kinds.retain(|k| named.iter().any(|(n, _)| n == k));
            }
            let mut detectors = Vec::new();
            for k in kinds {
                let ts = match named.iter().find(|(n, _)| *n == k) {
                    Some((_, v)) => v.clone(),
                    None => shared.clone().unwrap_or_else(|| k.default_thresholds()),
                };
                for &t in &ts {
                    k.check_threshold(t).map_err(|e| anyhow::anyhow!("--threshold: {e}"))?;
                }
                detectors.push((k, ts));
            }
            let jobs = (seeds.0.end - seeds.0.start) * s.cases.len() as u64;
            let bar = progress_bar(jobs);
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads.unwrap_or(0)).build()?;
            let rows = pool
                .install(|| eval::detect(&s, &detectors, seeds.0.clone(), &|| bar.inc(1)))
                .map_err(|e| anyhow::anyhow!("{}: {e}", scenario.display()))?;
            bar.finish_and_clear();
            // The table first: a plot that cannot be drawn does not cost the results.
            outp!(out, "{}", eval::render(&s.name, seeds.0, &rows, format.into())?);
            if let Some(path) = &plot {
                let svg = plot::svg(&s.name, &rows)?;
                output::write_output(path, &[&scenario], |f| Ok(f.write_all(svg.as_bytes())?))?;
            }
            Ok(Outcome::Ok)
        }
        Command::Workloads { format } => {
            match format {
                Format::Table => {
                    for w in registry.iter() {
                        outln!(out, "{:<12} {}", w.name(), w.summary());
                    }
                }
                Format::Json => {
                    let list: Vec<_> = registry
                        .iter()
                        .map(|w| serde_json::json!({ "protocol": w.name(), "summary": w.summary() }))
                        .collect();
                    outln!(out, "{}", serde_json::to_string_pretty(&list)?);
                }
            }
            Ok(Outcome::Ok)
        }
        Command::Faults { format } => {
            let catalogue = faultline::fault::catalogue();
            match format {
                Format::Table => {
                    for e in &catalogue {
                        let model = serde_json::to_value(e.model)?;
                        outln!(out, "{:<15} {:<10} {}", e.name, model.as_str().unwrap_or_default(), e.summary);
                        if !e.params.is_empty() {
                            outln!(out, "{:<26} params: {}", "", e.params.join(", "));
                        }
                    }
                }
                Format::Json => outln!(out, "{}", serde_json::to_string_pretty(&catalogue)?),
            }
            Ok(Outcome::Ok)
        }
        Command::Signals { scenario, seed, case, overrides, output: path, labels, interval_ms, duration_ms } => {
            for p in std::iter::once(&path).chain(&labels) {
                output::check_output(p, &[&scenario])?;
            }
            let s = registry.load(&scenario, &overrides)?;
            let seed = pick_seed(seed, &s);
            let c = match &case {
                None => 0,
                Some(name) => s.cases.iter().position(|c| &c.name == name).ok_or_else(|| {
                    let names: Vec<&str> = s.cases.iter().map(|c| c.name.as_str()).collect();
                    anyhow::anyhow!(
                        "{}: --case {name:?}: no such case (cases: {})",
                        scenario.display(),
                        names.join(", ")
                    )
                })?,
            };
            let workload = registry.get(s.protocol()).expect("a loaded scenario's workload is registered");
            let interval = faultline::time::Span::from_millis(interval_ms);
            let limit = s.limits.max_time.as_nanos().min(60_000_000_000);
            let until = faultline::time::Time::from_nanos(duration_ms.map_or(limit, |d| d * 1_000_000));
            // The samples are held until written: refuse a run too long to hold.
            let replicas = s.node_names().len() as u64;
            let expected = until.as_nanos() / interval.as_nanos() * replicas * 13;
            if expected > MAX_SIGNAL_SAMPLES {
                bail!(
                    "{}: {} ms every {interval_ms} ms would write about {expected} samples (at most {MAX_SIGNAL_SAMPLES}); lower --duration-ms or raise --interval-ms",
                    scenario.display(),
                    until.as_nanos() / 1_000_000
                );
            }
            let Some(rec) = workload.record(&s, c, seed, interval, until) else {
                let observable: Vec<&str> = registry.iter().filter(|w| w.observable()).map(|w| w.name()).collect();
                bail!(
                    "{}: faultline signals cannot observe protocol {:?} (it can observe: {})",
                    scenario.display(),
                    s.protocol(),
                    observable.join(", ")
                );
            };
            output::write_output(&path, &[&scenario], |f| Ok(faultline::signals::write_csv(&rec.samples, f)?))?;
            if let Some(l) = &labels {
                output::write_output(l, &[&scenario], |f| Ok(faultline::observe::write_labels_csv(&rec.labels, f)?))?;
            }
            output::eprint_line(&format!(
                "signals: {} samples of {} replicas every {interval_ms} ms over {:.1} s (seed {seed}, case {})",
                rec.samples.len(),
                rec.replicas.len(),
                until.as_nanos() as f64 / 1e9,
                s.cases[c].name
            ));
            Ok(Outcome::Ok)
        }
        Command::Diagnose { files, evaluate: true, seeds, threads, format, at, follow, input_format } => {
            if at.is_some() || follow || input_format.is_some() {
                bail!("--evaluate runs simulations: --at, --follow and --input-format do not apply");
            }
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads.unwrap_or(0)).build()?;
            pool.install(|| diagnose::evaluate(registry, &files, seeds.0.clone(), format, SUITE_TOML, out))?;
            Ok(Outcome::Ok)
        }
        Command::Diagnose { files, format, at, follow, input_format, .. } => {
            let input_format = input_format.map(InputFormat::signals);
            diagnose::run(diagnose::Args { files, format, at, follow, input_format }, out)?;
            Ok(Outcome::Ok)
        }
        Command::Check { histories, model, format, timeout, plot, input_format } => {
            let model = match model {
                Model::Register => faultline::linear::ModelKind::Register,
                Model::Kv => faultline::linear::ModelKind::Kv,
            };
            let input_format = input_format.map(|f| match f {
                HistoryInput::Edn => faultline::linear::parse::Format::Edn,
                HistoryInput::Jsonl => faultline::linear::parse::Format::Jsonl,
            });
            // The search's memo gets half the memory budget: past it the verdict is
            // unknown, well before the budget's watchdog would stop the process.
            let memo_bytes = (budget_mb * (1 << 20) / 2) as usize;
            let args = check::Args { histories, model, format, timeout_s: timeout, memo_bytes, plot, input_format };
            check::run(args, out)
        }
        Command::Tolerance { protocols, ns, seeds, format, plot, threads, emit, seed } => {
            if let Some(cell) = emit {
                outp!(out, "{}", faultline::tolerance::scenario_text(&cell, seed));
                return Ok(Outcome::Ok);
            }
            let args = tolerance::Args {
                protocols: protocols.0,
                ns: ns.0,
                seeds: seeds.0,
                format: match format {
                    TableFormat::Table => tolerance::Format::Table,
                    TableFormat::Json => tolerance::Format::Json,
                    TableFormat::Csv => tolerance::Format::Csv,
                },
                plot,
                threads,
            };
            let bar = progress_bar(tolerance::jobs(&args));
            let text = tolerance::tolerance(&args, &|| bar.inc(1))?;
            bar.finish_and_clear();
            outp!(out, "{text}");
            Ok(Outcome::Ok)
        }
        Command::Costs { ns, format, auth } => {
            let auth = match auth {
                AuthArg::Hmac => faultline::protocols::pbft::Auth::Hmac,
                AuthArg::Ed25519 => faultline::protocols::pbft::Auth::Ed25519,
            };
            outp!(out, "{}", tolerance::costs(&ns.0, auth, format == Format::Json)?);
            Ok(Outcome::Ok)
        }
        Command::Cluster { scenario, case, format, out: dir, keep, seed } => {
            cluster::run(cluster::Args { scenario, case, format, out: dir, keep, seed }, out)
        }
        Command::Proxy { config, seed } => proxy::run(&config, seed).map(|()| Outcome::Ok),
        Command::Bench { scenario, rounds, seed, mut overrides, format } => {
            if let Some(r) = rounds {
                overrides.push(Override { key: "quorum.rounds".into(), value: r.to_string() });
            }
            let s = registry.load(&scenario, &overrides)?;
            if s.protocol() != <quorum::Quorum as faultline::workload::Workload>::NAME {
                bail!(
                    "{}: faultline bench times the quorum coordinator's rounds; this scenario runs protocol {:?} (try faultline run or faultline sweep)",
                    scenario.display(),
                    s.protocol()
                );
            }
            let seed = pick_seed(seed, &s);
            let started = Instant::now();
            let rows: Vec<Row> = (0..s.cases.len()).map(|c| quorum::report::run_case(&s, c, seed, None).0).collect();
            let wall_s = started.elapsed().as_secs_f64();
            let b = BenchResult {
                seed,
                rounds: rows.iter().map(|r| r.rounds).sum(),
                events: rows.iter().map(|r| r.events).sum(),
                agreed: rows.iter().map(|r| r.agreed_rounds).sum(),
                wall_s,
                rounds_per_s: 0.0,
                events_per_s: 0.0,
            };
            let b = BenchResult { rounds_per_s: b.rounds as f64 / wall_s, events_per_s: b.events as f64 / wall_s, ..b };
            match format {
                Format::Table => {
                    outln!(out, "seed: {seed}");
                    outln!(
                        out,
                        "rounds={} events={} agreed={} ({:.4}) wall_s={:.3} rounds_per_s={:.0} events_per_s={:.0}",
                        b.rounds,
                        b.events,
                        b.agreed,
                        b.agreed as f64 / b.rounds.max(1) as f64,
                        b.wall_s,
                        b.rounds_per_s,
                        b.events_per_s
                    );
                }
                Format::Json => outln!(out, "{}", serde_json::to_string_pretty(&b)?),
            }
            Ok(Outcome::Ok)
        }
    }
}

#[derive(Serialize)]
struct BenchResult {
    seed: u64,
    rounds: u64,
    events: u64,
    agreed: u64,
    wall_s: f64,
    rounds_per_s: f64,
    events_per_s: f64,
}

/// A trace written to one file (see [`output::write_output`]), at most `--trace-max-mb` of
/// it: per case a header line, then its events.
struct FileTrace<'a> {
    file: &'a mut std::fs::File,
    budget: output::Capped<std::io::Sink>,
}

impl TraceSink for FileTrace<'_> {
    fn start(&mut self, s: &Scenario, case: usize, seed: u64) -> std::io::Result<Option<Box<dyn Tracer>>> {
        let header = serde_json::json!({
            "kind": "case",
            "case": s.cases[case].name,
            "seed": seed,
            "faults": s.describe_faults(case, seed),
        });
        writeln!(self.budget.sharing(&mut *self.file), "{header}")?;
        // The tracer writes through its own handle on the same file; the handles share one
        // offset, so case blocks follow each other.
        let tracer = NdjsonTracer::new(std::io::BufWriter::new(self.budget.sharing(self.file.try_clone()?)));
        Ok(Some(Box::new(tracer)))
    }
    fn finish(&mut self, mut tracer: Box<dyn Tracer>) -> std::io::Result<()> {
        tracer.finish()
    }
}

/// The seed to use: `--seed`, else the file's, else a fresh one (printed with the output).
fn pick_seed(flag: Option<u64>, scenario: &Scenario) -> u64 {
    flag.or(scenario.seed).unwrap_or_else(|| {
        // Picking a seed is the one place randomness comes from outside a run; the run
        // itself is then a pure function of the printed seed.
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        faultline::sim::rng::splitmix64(nanos ^ u64::from(std::process::id())) % 1_000_000_000
    })
}

/// The `faultline run` command that replays `scenario` with `seed` and `overrides`.
fn reproduce_run(scenario: &Path, seed: u64, overrides: &[Override]) -> String {
    let mut repro = format!("{} run {} --seed {seed}", program(), shell_quote(&scenario.display().to_string()));
    for o in overrides {
        repro.push_str(&format!(" --set {}", shell_quote(&o.to_string())));
    }
    repro
}

/// The name this binary was run as (`faultline`, or a binary of one's own that calls
/// [`main`] with its registry), for `reproduce:` lines that can be pasted as they are.
fn program() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| Path::new(&a).file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "faultline".to_owned())
}

/// Quotes `word` for a POSIX shell when it needs it, so a `reproduce:` line can be pasted
/// as it is. Single quotes keep everything literal; a single quote itself is closed,
/// escaped and reopened.
fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./=:,@+%".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Prints each case's first violation with a `reproduce:` line, and says how the run
/// ended: a safety violation anywhere makes it exit 1, liveness violations alone exit 3.
fn verdict(cases: &[(String, Vec<Violation>)], reproduce: &str) -> Outcome {
    let mut outcome = Outcome::Ok;
    for (case, violations) in cases {
        let (Some(v), Some(class)) = (violations.first(), violations.iter().map(|v| v.class).min()) else { continue };
        output::eprint_line(&format!(
            "violation: case {case}: {} at {:.3} ms: {}",
            v.property,
            v.t_ns as f64 / 1e6,
            v.detail
        ));
        output::eprint_line(&format!("reproduce: {reproduce} --case {}", shell_quote(case)));
        outcome = outcome.max(Outcome::of(class));
    }
    outcome
}

/// Prints, for each sweep row with violating seeds, how many and how to replay the first;
/// says how the sweep ended.
fn sweep_verdict(path: &Path, overrides: &[Override], tallies: &[Tally]) -> Outcome {
    let mut outcome = Outcome::Ok;
    for t in tallies.iter().filter(|t| t.violating_seeds > 0) {
        let seed = t.first_violating_seed.expect("a violating row names its first seed");
        let mut repro = reproduce_run(path, seed, overrides);
        if let Some(v) = &t.vary {
            repro.push_str(&format!(" --set {}", shell_quote(v)));
        }
        output::eprint_line(&format!(
            "violation: case {}: {} of {} seeds violated a property",
            t.case, t.violating_seeds, t.seeds
        ));
        output::eprint_line(&format!("reproduce: {repro} --case {}", shell_quote(&t.case)));
        outcome = outcome.max(Outcome::of(t.class.unwrap_or(Class::Always)));
    }
    outcome
}

/// A progress bar on stderr when it is a terminal, else one that draws nothing.
fn progress_bar(jobs: u64) -> indicatif::ProgressBar {
    if std::io::stderr().is_terminal() { indicatif::ProgressBar::new(jobs) } else { indicatif::ProgressBar::hidden() }
}

/// One scenario per value of `--vary key=v1,v2,...` (or the scenario alone).
fn variants(registry: &Registry, path: &Path, overrides: &[Override], vary: Option<&str>) -> Result<Vec<Variant>> {
    let Some(vary) = vary else {
        return Ok(vec![Variant { label: String::new(), scenario: registry.load(path, overrides)? }]);
    };
    let Some((key, values)) = vary.split_once('=') else {
        bail!("--vary {vary:?}: expected key=v1,v2,...");
    };
    let values: Vec<&str> = values.split(',').map(str::trim).filter(|v| !v.is_empty()).collect();
    if values.is_empty() {
        bail!("--vary {vary:?}: no values");
    }
    // Each value loads a scenario of its own before any seed runs.
    if values.len() > MAX_LIST_VALUES {
        bail!("--vary {:?}: {} values; at most {MAX_LIST_VALUES}", faultline::input::elide(vary), values.len());
    }
    values
        .iter()
        .map(|v| {
            let mut o = overrides.to_vec();
            o.push(Override::parse(&format!("{key}={v}")).map_err(anyhow::Error::msg)?);
            Ok(Variant { label: format!("{key}={v}"), scenario: registry.load(path, &o)? })
        })
        .collect()
}
