//! Fuzzing the scenario loader and the `--set` override parser on stable Rust.
//!
//! Every shipped scenario (`scenarios/**/*.toml`) is mutated (lines deleted, duplicated and
//! swapped, numbers replaced by extreme values, truncation, invalid UTF-8, huge strings and
//! lines, values copied from other fields, awkward snippets, several of these at once) and
//! loaded. Three properties:
//!
//! 1. [`mutated_scenarios_load_or_fail_located`]: `Scenario::from_bytes` never panics, and
//!    returns a scenario or a one-line error located at `FILE:LINE:COL: FIELD: MESSAGE`
//!    (line and column from 1, within the text).
//! 2. [`overrides_parse_or_fail_located`]: random `--set key=value` (keys taken from the
//!    scenarios or made up: random, many, empty or indexed segments; values extreme numbers,
//!    strings, inline tables) are refused by `Override::parse` with a one-line message, or
//!    load to a scenario or a one-line error located in the file or at `--set `.
//! 3. [`accepted_mutants_run_without_panicking`]: mutants (and overrides) that load are run,
//!    every case, with tight limits, and must not panic.
//!
//! Every load runs on its own thread behind a hang guard ([`LOAD_HANG`]). The guard only
//! detects hangs (an endless loop, a quadratic blow-up on a 1 MB file): it is generous on
//! purpose and says nothing about how fast loading is.
//!
//! Deterministic by default: proptest's ChaCha generator with a fixed seed, so CI sees the
//! same mutants on every run. `FAULTLINE_FUZZ_SEED=<u64>` (or proptest's own
//! `PROPTEST_RNG_SEED`) picks other mutants; `FAULTLINE_FUZZ_CASES=<n>` raises the number of
//! cases of properties 1 and 2 (property 3 runs a sixteenth as many) for long offline runs.
//! A failing case leaves its mutated file in `$CARGO_TARGET_TMPDIR/fuzz_scenarios/` (the
//! last one written is the shrunk one): `faultline run FILE` replays it.
//! `FAULTLINE_FUZZ_ALLOW=<kinds>` tolerates known kinds of violation while exploring (see
//! [`tolerated`]); `FAULTLINE_FUZZ_LOG=<file>` collects every refusal's text. The last
//! tests are the harness's findings, fixed. The coverage-guided counterpart is `fuzz/`
//! (`cargo fuzz`); docs/fuzzing.md describes both.

use std::any::Any;
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use faultline::detect::eval::{self, DetectorKind};
use faultline::protocols::heartbeat::Heartbeat;
use faultline::protocols::pbft::Pbft;
use faultline::protocols::quorum::{Quorum, report};
use faultline::protocols::raft::Raft;
use faultline::scenario::{Override, Scenario};
use faultline::sim::{Span, Time};
use faultline::workload::config as workload_config;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::strategy::Union;
use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestCaseError, TestRunner};

/// Hang guard for one load. A hang detector, not a speed claim: a load takes milliseconds.
const LOAD_HANG: Duration = Duration::from_secs(10);
/// Hang guard for running one accepted mutant (every case, with [`MAX_EVENTS`] each).
const RUN_HANG: Duration = Duration::from_secs(60);
/// Limits an accepted mutant runs under. The event count is what bounds the work (a
/// scenario of 512 nodes or a billion rounds still stops at once); a minute of virtual time
/// lets faults placed after the first seconds fire.
const MAX_EVENTS: u64 = 20_000;
const MAX_TIME: Time = Time::from_nanos(60_000_000_000);
/// Cases of an accepted mutant that are run: the first few (and the last).
const MAX_RUN_CASES: usize = 6;

/// Default cases of properties 1 and 2 (property 3 runs a sixteenth): the whole file takes
/// about 15 s on a 2-core machine.
const DEFAULT_CASES: u32 = 2048;
const DEFAULT_SEED: u64 = 0x5ce7_a210_f0a1_7115;

// ---------------------------------------------------------------------------------------
// The shipped scenarios, and what can be taken from them.

struct Shipped {
    /// The path as errors name it, e.g. `scenarios/detectors/crash.toml`.
    file: String,
    bytes: Vec<u8>,
    /// Every field path written in the file (`quorum.deadline_ms`, `cases[1].faults.0.p`).
    paths: Vec<String>,
}

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios")
}

fn shipped() -> &'static [Shipped] {
    static SHIPPED: OnceLock<Vec<Shipped>> = OnceLock::new();
    SHIPPED.get_or_init(|| {
        let root = scenarios_dir();
        let mut files = Vec::new();
        walk(&root, &mut files);
        files.sort();
        assert!(!files.is_empty(), "no scenarios under {}", root.display());
        files
            .into_iter()
            .map(|path| {
                let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let rel = path.strip_prefix(&root).expect("under the root").display().to_string();
                let paths = field_paths(std::str::from_utf8(&bytes).expect("shipped scenarios are UTF-8"));
                Shipped { file: format!("scenarios/{rel}"), bytes, paths }
            })
            .collect()
    })
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            // scenarios/real/ holds `faultline cluster`'s files: real processes, not the
            // simulator's scenarios (faultline-real's own tests read them).
            if path.file_name().is_some_and(|n| n == "real") {
                continue;
            }
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}

/// Every path to a value in the document, written alternately as `a[0]` and `a.0`.
fn field_paths(text: &str) -> Vec<String> {
    fn go(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
        match value {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    out.push(path.clone());
                    go(&path, v, out);
                }
            }
            toml::Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    let path =
                        if out.len().is_multiple_of(2) { format!("{prefix}[{i}]") } else { format!("{prefix}.{i}") };
                    out.push(path.clone());
                    go(&path, v, out);
                }
            }
            _ => {}
        }
    }
    let table: toml::Table = toml::from_str(text).expect("shipped scenarios are TOML");
    let mut out = Vec::new();
    go("", &toml::Value::Table(table), &mut out);
    out
}

// ---------------------------------------------------------------------------------------
// Mutations of a file's bytes.

/// Numbers a mutation writes in place of one in the file.
const EXTREMES: &[&str] = &[
    "0",
    "-1",
    "1e-10",
    "1e-300",
    "1e308",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551615",
    "nan",
    "inf",
    "-inf",
    "-0.0",
    "0.0000004",
    "0.0000005",
    "1e-7",
    "5e-324",
    "1.7976931348623157e308",
    "1e309",
    "99999999999999999999",
    "9007199254740993",
    "31536000000",
    "31536000000.000004",
    "1_000",
    "0x7fffffffffffffff",
    "0b1",
    "1.",
    ".5",
    "1e",
    "+nan",
    "511",
    "512",
    "1000000000",
    "10000000000",
    "65536",
    "16777216",
    "2",
    "1",
    "0.5",
    "1.0",
    "0.999999",
    "999999",
    "1000000",
];

/// Byte sequences that are not UTF-8.
const INVALID_UTF8: &[&[u8]] = &[
    &[0xff],
    &[0x80],
    &[0xc0, 0x80],
    &[0xe2, 0x82],
    &[0xed, 0xa0, 0x80],
    &[0xf4, 0x90, 0x80, 0x80],
    &[0xf0, 0x9f, 0x98],
    &[0xfe, 0xff],
];

/// Awkward snippets spliced in at any byte (mid-token, mid-string, mid-key).
const SPLICES: &[&str] = &[
    "\0", "\r", "\n", "\r\n", "\t", " ", "\u{b}", "\u{c}", "\u{85}", "\u{2028}", "\u{feff}", "\u{202e}", "é", "\"",
    "'", "\"\"\"", "=", "[", "]", "[[", "{", "}", ",", ".", "#", "\\", "\\u0000", "\\n", "-", "_",
];

/// Awkward lines inserted between lines.
const LINES: &[&str] = &[
    "\"a\\nb\" = 1",
    "\"a\\rb\" = 1",
    "\"\\u2028\" = 1",
    "\"\\u0000\" = 1",
    "\"\" = 1",
    "'x\\n' = 1",
    "\"faults\\n\" = []",
    "[\"x\\ny\"]",
    "[quorum]",
    "[heartbeat]",
    "[raft]",
    "[raft.client]",
    "[heartbeat.swim]",
    "[limits]",
    "[network]",
    "[cases]",
    "[[cases]]",
    "[[quorum]]",
    "[[cases.faults]]",
    "[[cases]]\nname = \"x\"\nfaults = [{ node = \"f0\", kind = \"crash\" }]",
    "[[cases]]\nname = \"y\"\nswarm = { faults = 10000, window_ms = 0.000001 }",
    "[[cases]]\nname = \"z\"\nswarm = { faults = 3, kinds = [\"skew\", \"flip\", \"forge\", \"partition\"] }",
    "[[cases.faults]]\nnode = \"leader\"\nkind = \"crash\"",
    "name = \"dup\"",
    "protocol = \"raft\"",
    "protocol = \"heartbeat\"",
    "protocol = \"quorum\"",
    "protocol = \"\"",
    "cases = []",
    "seed = -1",
    "seed = 18446744073709551615",
    "fault_budget = -1",
    "fault_budget = 0",
    "x = 1979-05-27T07:32:00Z",
    "name = 1979-05-27",
    "a = \"\"\"",
    "a = '''",
    "a = \"\\uD800\"",
    "a = \"\\U0011FFFF\"",
    "a.b.c = 1",
    "quorum.followers = 1",
    "limits.max_events = 1",
    "[a.b.c.d.e.f]",
    "= 1",
    "[",
    "]]",
    "{",
    "#",
    "'",
    "\"",
    "\u{feff}name = \"bom\"",
    "key = 1 # comment",
    "faults = [{ node = \"f0\", kind = \"skew\", offset_ms = 31536000000, drift_ppm = 999999.9 }]",
    "faults = [{ node = \"f0\", kind = \"omit-every-nth\", n = 9223372036854775807 }]",
    "faults = [{ node = \"f0\", kind = \"flip\", p = 1, bits = 64 }]",
    "faults = [{ node = \"f0\", kind = \"restart\", at_ms = 31536000000, duration_ms = 31536000000 }]",
    "latency = { dist = \"pareto\", scale_ms = 0.000001, shape = 1e-300 }",
    "latency = { dist = \"lognormal\", median_ms = 31536000000, sigma = 10 }",
    "latency = { dist = \"normal\", mean_ms = 0, stddev_ms = 31536000000 }",
    "interval = { dist = \"uniform\", min_ms = 0, max_ms = 0.000001 }",
];

/// Sizes of a huge string or line; the last crosses the 1 MiB limit on a scenario file.
const HUGE: &[usize] = &[1_000, 100_000, 100_000, 100_000, 300_000, (1 << 20) + 1];

#[derive(Clone, Debug)]
enum Mutation {
    DeleteLine(Index),
    DuplicateLine(Index),
    SwapLines(Index, Index),
    /// Replaces a number (any digit run outside a key) with an extreme value.
    Number(Index, &'static str),
    Truncate(Index),
    InvalidUtf8(Index, &'static [u8]),
    Splice(Index, &'static str),
    InsertLine(Index, &'static str),
    /// Inserts a line `kNNN = "xxx…"` of about this many bytes.
    HugeLine(Index, usize, Fill),
    /// Replaces the contents of a string with about this many bytes.
    HugeString(Index, usize, Fill),
    /// Replaces a string's contents with another string's (`kind = "leader"`).
    CopyString(Index, Index),
    /// Replaces a value (number, string, boolean, one-line array or inline table) with
    /// another field's value.
    CopyValue(Index, Index),
    /// An array or inline table nested this deep, as a new line.
    Nest(Index, usize, bool),
    /// Every `\n` becomes `\r\n`.
    Crlf,
}

/// What a huge string is made of.
#[derive(Clone, Copy, Debug)]
enum Fill {
    Ascii,
    /// Two bytes a character, so columns and bytes differ.
    Accented,
    /// `\n` escapes: the value holds real newlines.
    EscapedNewlines,
}

impl Fill {
    fn make(self, bytes: usize) -> String {
        match self {
            Fill::Ascii => "x".repeat(bytes),
            Fill::Accented => "é".repeat(bytes / 2),
            Fill::EscapedNewlines => "ab\\n".repeat(bytes / 4),
        }
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let fill = prop_oneof![Just(Fill::Ascii), Just(Fill::Accented), Just(Fill::EscapedNewlines)];
    let i = || any::<Index>();
    Union::new_weighted(vec![
        (6, i().prop_map(Mutation::DeleteLine).boxed()),
        (3, i().prop_map(Mutation::DuplicateLine).boxed()),
        (3, (i(), i()).prop_map(|(a, b)| Mutation::SwapLines(a, b)).boxed()),
        (10, (i(), select(EXTREMES)).prop_map(|(a, v)| Mutation::Number(a, v)).boxed()),
        (3, i().prop_map(Mutation::Truncate).boxed()),
        (2, (i(), select(INVALID_UTF8)).prop_map(|(a, b)| Mutation::InvalidUtf8(a, b)).boxed()),
        (3, (i(), select(SPLICES)).prop_map(|(a, s)| Mutation::Splice(a, s)).boxed()),
        (4, (i(), select(LINES)).prop_map(|(a, s)| Mutation::InsertLine(a, s)).boxed()),
        (1, (i(), select(HUGE), fill.clone()).prop_map(|(a, n, f)| Mutation::HugeLine(a, n, f)).boxed()),
        (1, (i(), select(HUGE), fill).prop_map(|(a, n, f)| Mutation::HugeString(a, n, f)).boxed()),
        (5, (i(), i()).prop_map(|(a, b)| Mutation::CopyString(a, b)).boxed()),
        (4, (i(), i()).prop_map(|(a, b)| Mutation::CopyValue(a, b)).boxed()),
        (
            1,
            (i(), select(&[8usize, 64, 1_000, 10_000, 200_000][..]), any::<bool>())
                .prop_map(|(a, d, t)| Mutation::Nest(a, d, t))
                .boxed(),
        ),
        (1, Just(Mutation::Crlf).boxed()),
    ])
}

fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
}

fn unlines(lines: &[Vec<u8>]) -> Vec<u8> {
    lines.join(&b'\n')
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.'
}

/// Spans of numbers: a digit (or a sign before one) not preceded by a word character,
/// through the following word characters, signs and dots (`1e-10`, `60_000`, `0.5`).
fn number_spans(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts = (bytes[i].is_ascii_digit()
            || (matches!(bytes[i], b'-' | b'+') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)))
            && (i == 0 || !is_word(bytes[i - 1]));
        if starts {
            let start = i;
            i += 1;
            while i < bytes.len() && (is_word(bytes[i]) || matches!(bytes[i], b'-' | b'+')) {
                i += 1;
            }
            out.push(start..i);
        } else {
            i += 1;
        }
    }
    out
}

/// Spans of the contents of one-line basic strings (between the quotes).
fn string_spans(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'#' {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if bytes[i] == b'"' {
            let start = i + 1;
            let mut j = start;
            while j < bytes.len() && bytes[j] != b'"' && bytes[j] != b'\n' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            if j < bytes.len() && bytes[j] == b'"' {
                out.push(start..j);
            }
            i = j + 1;
        } else {
            i += 1;
        }
    }
    out
}

/// Spans of values: what follows `=` up to the end of the value (a string with its
/// quotes, a balanced one-line array or inline table, or a bare token).
const MAX_VALUE_BYTES: usize = 4096;

fn value_spans(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut in_string = false;
    for (eq, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => in_string = !in_string,
            b'\n' => in_string = false,
            b'=' if !in_string => {
                let mut start = eq + 1;
                while start < bytes.len() && bytes[start] == b' ' {
                    start += 1;
                }
                let Some(&first) = bytes.get(start) else { continue };
                // Values longer than this are skipped: scanning to the end of every value of
                // a 1 MB line nested 200 000 deep would be quadratic.
                let window = &bytes[start..bytes.len().min(start + MAX_VALUE_BYTES)];
                let end = match first {
                    b'"' => window[1..].iter().position(|&c| c == b'"' || c == b'\n').map(|p| start + p + 2),
                    b'[' | b'{' => {
                        let mut depth = 0i32;
                        let mut end = None;
                        for (k, &c) in window.iter().enumerate() {
                            match c {
                                b'[' | b'{' => depth += 1,
                                b']' | b'}' => depth -= 1,
                                b'\n' => break,
                                _ => {}
                            }
                            if depth == 0 {
                                end = Some(start + k + 1);
                                break;
                            }
                        }
                        end
                    }
                    _ => window
                        .iter()
                        .position(|&c| matches!(c, b',' | b'}' | b']' | b'\n' | b' ' | b'#'))
                        .map(|p| start + p),
                };
                if let Some(end) = end
                    && end > start
                    && end <= bytes.len()
                {
                    out.push(start..end);
                }
            }
            _ => {}
        }
    }
    out
}

fn splice(bytes: &mut Vec<u8>, range: Range<usize>, with: &[u8]) {
    bytes.splice(range, with.iter().copied());
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::DeleteLine(i) => {
            let mut ls = lines(bytes);
            ls.remove(i.index(ls.len()));
            *bytes = unlines(&ls);
        }
        Mutation::DuplicateLine(i) => {
            let mut ls = lines(bytes);
            let k = i.index(ls.len());
            ls.insert(k, ls[k].clone());
            *bytes = unlines(&ls);
        }
        Mutation::SwapLines(a, b) => {
            let mut ls = lines(bytes);
            let (a, b) = (a.index(ls.len()), b.index(ls.len()));
            ls.swap(a, b);
            *bytes = unlines(&ls);
        }
        Mutation::Number(i, v) => {
            let spans = number_spans(bytes);
            if !spans.is_empty() {
                splice(bytes, spans[i.index(spans.len())].clone(), v.as_bytes());
            }
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len() + 1)),
        Mutation::InvalidUtf8(i, b) => splice(bytes, at(i, bytes), b),
        Mutation::Splice(i, s) => splice(bytes, at(i, bytes), s.as_bytes()),
        Mutation::InsertLine(i, line) => {
            let mut ls = lines(bytes);
            let k = i.index(ls.len() + 1);
            ls.insert(k, line.as_bytes().to_vec());
            *bytes = unlines(&ls);
        }
        Mutation::HugeLine(i, n, fill) => {
            let mut ls = lines(bytes);
            let k = i.index(ls.len() + 1);
            ls.insert(k, format!("k{k} = \"{}\"", fill.make(*n)).into_bytes());
            *bytes = unlines(&ls);
        }
        Mutation::HugeString(i, n, fill) => {
            let spans = string_spans(bytes);
            if !spans.is_empty() {
                splice(bytes, spans[i.index(spans.len())].clone(), fill.make(*n).as_bytes());
            }
        }
        Mutation::CopyString(a, b) => {
            let spans = string_spans(bytes);
            if !spans.is_empty() {
                let (to, from) = (spans[a.index(spans.len())].clone(), spans[b.index(spans.len())].clone());
                let with = bytes[from].to_vec();
                splice(bytes, to, &with);
            }
        }
        Mutation::CopyValue(a, b) => {
            let spans = value_spans(bytes);
            if !spans.is_empty() {
                let (to, from) = (spans[a.index(spans.len())].clone(), spans[b.index(spans.len())].clone());
                let with = bytes[from].to_vec();
                splice(bytes, to, &with);
            }
        }
        Mutation::Nest(i, depth, table) => {
            let line = if *table {
                format!("nest = {}1{}", "{ a = ".repeat(*depth), " }".repeat(*depth))
            } else {
                format!("nest = {}1{}", "[".repeat(*depth), "]".repeat(*depth))
            };
            let mut ls = lines(bytes);
            let k = i.index(ls.len() + 1);
            ls.insert(k, line.into_bytes());
            *bytes = unlines(&ls);
        }
        Mutation::Crlf => {
            let ls = lines(bytes);
            *bytes = ls.join(&b"\r\n"[..]);
        }
    }
}

fn at(i: &Index, bytes: &[u8]) -> Range<usize> {
    let k = i.index(bytes.len() + 1);
    k..k
}

fn mutate(original: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    for m in mutations {
        apply(&mut bytes, m);
    }
    bytes
}

// ---------------------------------------------------------------------------------------
// Overrides.

/// Field names of every table of a scenario (crates/faultline/src/scenario/raw.rs, and
/// crates/faultline/src/protocols/*/workload.rs for the workload tables).
const FIELDS: &[&str] = &[
    "name",
    "description",
    "seed",
    "protocol",
    "fault_budget",
    "quorum",
    "heartbeat",
    "raft",
    "network",
    "limits",
    "cases",
    "followers",
    "deadline_ms",
    "rounds",
    "index",
    "data",
    "coordinator",
    "content_quorum",
    "checksum",
    "signature",
    "retry_ms",
    "deadline_max_ms",
    "key_seed",
    "persist",
    "nodes",
    "interval_ms",
    "interval",
    "duration_ms",
    "swim",
    "data_probe",
    "servers",
    "clients",
    "heartbeat_ms",
    "election_timeout_ms",
    "election_timeout_max_ms",
    "max_inflight",
    "max_batch",
    "pre_vote",
    "check_quorum",
    "read",
    "fencing",
    "checksums",
    "canary",
    "bootstrap_leader",
    "liveness_budget_ms",
    "client",
    "timeout_ms",
    "ops",
    "read_fraction",
    "keys",
    "enabled",
    "indirect",
    "latency",
    "links",
    "from",
    "to",
    "dist",
    "ms",
    "min_ms",
    "max_ms",
    "mean_ms",
    "stddev_ms",
    "median_ms",
    "sigma",
    "scale_ms",
    "shape",
    "cap_ms",
    "max_time_ms",
    "max_events",
    "inflight_per_link",
    "faults",
    "kinds",
    "window_ms",
    "node",
    "kind",
    "at_ms",
    "until_ms",
    "direction",
    "p",
    "extra",
    "n",
    "bytes",
    "peers",
    "offset_ms",
    "drift_ppm",
    "age_ms",
    "bits",
    "victim",
    "0",
    "1",
    "9",
];

/// Hand-picked keys: empty segments, bad brackets, huge and negative indexes.
const KEYS: &[&str] = &[
    "",
    " ",
    ".",
    "..",
    "a..b",
    ".a",
    "a.",
    "[0]",
    "0",
    "a[",
    "a]",
    "a[]",
    "[]",
    "cases[]",
    "cases[0",
    "cases]0[",
    "cases[0]]",
    "cases[[0]]",
    "cases.-1.name",
    "cases.18446744073709551615.name",
    "cases.18446744073709551616.name",
    "cases.99999999999999999999999.name",
    "cases.+1.name",
    "cases.0x1.name",
    "cases[0].faults[9999999].p",
    "cases[0].faults[0].p.q",
    "cases[0].faults[0][0]",
    "cases[0][0]",
    "name.x",
    "name[0]",
    "quorum[0]",
    "quorum.followers.x",
    "limits.max_events.0",
    "network.links[0].latency.dist",
    "network.links.0",
    "heartbeat.swim.enabled",
    "raft.client.ops",
    "\"quorum\".followers",
    "quorum.\"followers\"",
    "quorum . followers",
    "quorum.follo wers",
    "a\nb",
    "a\rb",
    "a\u{2028}b",
    "a\0b",
    "é",
    "\u{feff}name",
    "name ",
    " name",
    "=",
    "==",
    "name=",
];

/// Hand-picked values: types that do not fit, TOML the override parser may or may not
/// read, and unusual spellings.
const VALUES: &[&str] = &[
    "",
    " ",
    "x",
    "\"x\"",
    "\"\"",
    "''",
    "'x'",
    "\"\"\"x\"\"\"",
    "\"unterminated",
    "'unterminated",
    "\"a\\nb\"",
    "a\nb",
    "a\rb",
    "\u{2028}",
    "\0",
    "true",
    "false",
    "True",
    "{}",
    "{ }",
    "[]",
    "[1, 2]",
    "[\"f0\", \"f0\"]",
    "[\"leader\"]",
    "[[[[[[[[1]]]]]]]]",
    "{ dist = \"constant\", ms = 1 }",
    "{ dist = \"constant\", ms = -1 }",
    "{ dist = \"pareto\", scale_ms = 0.000001, shape = 1e-300 }",
    "{ dist = \"lognormal\", median_ms = 1, sigma = 10 }",
    "{ dist = \"normal\", mean_ms = 1e10, stddev_ms = 1e10 }",
    "{ dist = \"uniform\", min_ms = 5, max_ms = 1 }",
    "{ node = \"f0\", kind = \"crash\" }",
    "[{ node = \"f0\", kind = \"crash\" }]",
    "[{ node = \"n0\", kind = \"gray\", p = 1 }]",
    "[{ node = \"s0\", kind = \"restart\", duration_ms = 1 }]",
    "[{ name = \"x\" }]",
    "[{ name = \"x\" }, { name = \"x\" }]",
    "{ faults = 10000, window_ms = 0.000001 }",
    "{ faults = 1, kinds = [] }",
    "{ enabled = false }",
    "{ interval_ms = 1, timeout_ms = 1 }",
    "{ a = 1 }",
    "1979-05-27",
    "1979-05-27T07:32:00Z",
    "07:32:00",
    "=",
    "a=b",
    "x = 1",
    "1 # comment",
    "1,2",
    "crash",
    "leader",
    "f0",
    "n0",
    "s0",
    "heartbeat",
    "raft",
    "quorum",
    "ed25519",
    "crc32c+sha256",
    "content-quorum",
    "retrying",
    "read-index",
    "no-fencing",
    "0x10",
    "0o7",
    "0b1",
    "+1",
    "--1",
    "1__0",
    "1e",
    "-",
    "é",
];

#[derive(Clone, Debug)]
enum KeySpec {
    /// A path written in the scenario.
    Known(Index),
    /// A path written in the scenario, one segment longer.
    Longer(Index, &'static str),
    /// A path written in the scenario with its first index replaced.
    Reindexed(Index, &'static str),
    /// Field names from any table, joined with dots.
    Fields(Vec<&'static str>),
    /// Random segments.
    Random(Vec<String>),
    /// One segment repeated many times.
    Deep(usize, &'static str),
    Hand(&'static str),
}

#[derive(Clone, Debug)]
enum ValueSpec {
    Number(&'static str),
    Hand(&'static str),
    /// A string of this many bytes, bare or quoted.
    Huge(usize, bool),
    /// A value written somewhere in the scenario.
    Copied(Index),
    Random(String),
    /// An array nested this deep.
    Nested(usize),
}

#[derive(Clone, Debug)]
struct OverrideSpec {
    key: KeySpec,
    value: ValueSpec,
    /// Whether `key` and `value` are joined by `=` (else the key alone is given).
    equals: bool,
}

fn key_spec() -> impl Strategy<Value = KeySpec> {
    let segment = prop_oneof![
        "[a-z_]{1,10}",
        "[0-9]{1,4}",
        "[0-9]{19,21}",
        "\\[[0-9]{0,3}\\]",
        "[ -~]{0,4}",
        "\\PC{0,3}",
        "[\\x00-\\x1f]{1,2}",
    ];
    Union::new_weighted(vec![
        (8, any::<Index>().prop_map(KeySpec::Known).boxed()),
        (2, (any::<Index>(), select(FIELDS)).prop_map(|(i, f)| KeySpec::Longer(i, f)).boxed()),
        (
            2,
            (any::<Index>(), select(&["999999", "18446744073709551615", "18446744073709551616", "-1", "", " 0"][..]))
                .prop_map(|(i, s)| KeySpec::Reindexed(i, s))
                .boxed(),
        ),
        (3, vec(select(FIELDS), 1..=5).prop_map(KeySpec::Fields).boxed()),
        (2, vec(segment, 0..=6).prop_map(KeySpec::Random).boxed()),
        (
            1,
            (select(&[17usize, 100, 10_000, 1_000_000][..]), select(&["a", "cases[0]", "0", "quorum", ""][..]))
                .prop_map(|(n, s)| KeySpec::Deep(n, s))
                .boxed(),
        ),
        (2, select(KEYS).prop_map(KeySpec::Hand).boxed()),
    ])
}

fn value_spec() -> impl Strategy<Value = ValueSpec> {
    Union::new_weighted(vec![
        (6, select(EXTREMES).prop_map(ValueSpec::Number).boxed()),
        (4, select(VALUES).prop_map(ValueSpec::Hand).boxed()),
        (
            1,
            (select(&[1_000usize, 100_000, 1 << 20][..]), any::<bool>())
                .prop_map(|(n, q)| ValueSpec::Huge(n, q))
                .boxed(),
        ),
        (3, any::<Index>().prop_map(ValueSpec::Copied).boxed()),
        (2, "\\PC{0,12}".prop_map(ValueSpec::Random).boxed()),
        (1, select(&[100usize, 10_000, 200_000][..]).prop_map(ValueSpec::Nested).boxed()),
    ])
}

fn override_spec() -> impl Strategy<Value = OverrideSpec> {
    (key_spec(), value_spec(), prop::bool::weighted(0.95)).prop_map(|(key, value, equals)| OverrideSpec {
        key,
        value,
        equals,
    })
}

fn key_text(spec: &KeySpec, s: &Shipped) -> String {
    let known = |i: &Index| s.paths[i.index(s.paths.len())].clone();
    match spec {
        KeySpec::Known(i) => known(i),
        KeySpec::Longer(i, f) => format!("{}.{f}", known(i)),
        KeySpec::Reindexed(i, with) => {
            let path = known(i);
            // The first run of digits after `[` or `.`.
            let b = path.as_bytes();
            match (1..b.len()).find(|&k| b[k].is_ascii_digit() && matches!(b[k - 1], b'[' | b'.')) {
                Some(start) => {
                    let end = (start..b.len()).find(|&k| !b[k].is_ascii_digit()).unwrap_or(b.len());
                    format!("{}{with}{}", &path[..start], &path[end..])
                }
                None => format!("{path}.{with}"),
            }
        }
        KeySpec::Fields(fs) => fs.join("."),
        KeySpec::Random(segs) => segs.join("."),
        KeySpec::Deep(n, seg) => vec![*seg; *n].join("."),
        KeySpec::Hand(k) => (*k).to_owned(),
    }
}

fn value_text(spec: &ValueSpec, s: &Shipped) -> String {
    match spec {
        ValueSpec::Number(v) | ValueSpec::Hand(v) => (*v).to_owned(),
        ValueSpec::Huge(n, quoted) if *quoted => format!("\"{}\"", "x".repeat(*n)),
        ValueSpec::Huge(n, _) => "x".repeat(*n),
        ValueSpec::Copied(i) => {
            let spans = value_spans(&s.bytes);
            String::from_utf8_lossy(&s.bytes[spans[i.index(spans.len())].clone()]).into_owned()
        }
        ValueSpec::Random(v) => v.clone(),
        ValueSpec::Nested(d) => format!("{}1{}", "[".repeat(*d), "]".repeat(*d)),
    }
}

fn override_text(spec: &OverrideSpec, s: &Shipped) -> String {
    let key = key_text(&spec.key, s);
    if spec.equals { format!("{key}={}", value_text(&spec.value, s)) } else { key }
}

// ---------------------------------------------------------------------------------------
// Loading behind the guard, and what an error must look like.

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic with a non-string payload)".to_owned())
}

/// Runs `f` on its own thread (with the 8 MiB stack of a main thread, as the CLI has):
/// its value, or why there is none (a panic, or no answer within `limit`).
fn guarded<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    let worker = thread::Builder::new()
        .name("fuzz-worker".into())
        .stack_size(8 << 20)
        .spawn(move || {
            let _ = tx.send(panic::catch_unwind(AssertUnwindSafe(f)));
        })
        .expect("spawn a worker thread");
    match rx.recv_timeout(limit) {
        Ok(Ok(value)) => {
            let _ = worker.join();
            Ok(value)
        }
        Ok(Err(payload)) => {
            let _ = worker.join();
            Err(format!("[panic] panicked: {}", panic_message(&*payload)))
        }
        // The worker is left running: a hang cannot be interrupted.
        Err(RecvTimeoutError::Timeout) => Err(format!("[hang] no answer within {limit:?}")),
        Err(RecvTimeoutError::Disconnected) => Err("[panic] the worker died without answering".to_owned()),
    }
}

/// Characters that break a line on a terminal or in a log.
fn line_break(text: &str) -> Option<char> {
    text.chars().find(|c| matches!(c, '\n' | '\r' | '\u{b}' | '\u{c}' | '\u{85}' | '\u{2028}' | '\u{2029}'))
}

/// Checks an error's text: one line, then `FILE:LINE:COL: FIELD: MESSAGE` with the line
/// and column (from 1) inside the text, or (with overrides) `--set ...`.
fn check_located(file: &str, bytes: &[u8], overrides: &[Override], text: &str) -> Result<(), String> {
    if let Some(c) = line_break(text) {
        return Err(format!("[multi-line] the error is not one line (it holds {c:?})"));
    }
    if let Some(rest) = text.strip_prefix(file).and_then(|r| r.strip_prefix(':')) {
        let number = |s: &str| -> Option<(usize, usize)> {
            let digits = s.bytes().take_while(u8::is_ascii_digit).count();
            Some((s[..digits].parse().ok()?, digits))
        };
        let Some((line, n)) = number(rest) else { return Err("[unlocated] no line number after FILE:".into()) };
        let Some(rest) = rest[n..].strip_prefix(':') else {
            return Err("[unlocated] no `:` after the line number".into());
        };
        let Some((column, n)) = number(rest) else { return Err("[unlocated] no column after FILE:LINE:".into()) };
        let Some(rest) = rest[n..].strip_prefix(": ") else {
            return Err("[unlocated] no `: ` after FILE:LINE:COL".into());
        };
        if line == 0 || column == 0 {
            return Err(format!("[bad-location] line {line}, column {column}: both count from 1"));
        }
        let lossy = String::from_utf8_lossy(bytes);
        let text_lines: Vec<&str> = lossy.split('\n').collect();
        let Some(l) = text_lines.get(line - 1) else {
            return Err(format!("[bad-location] line {line} is past the end of the text ({} lines)", text_lines.len()));
        };
        if column > l.chars().count() + 1 {
            return Err(format!(
                "[bad-location] column {column} is past the end of line {line} ({} characters)",
                l.chars().count()
            ));
        }
        match rest.split_once(": ") {
            Some((field, message)) if !field.trim().is_empty() && !message.trim().is_empty() => Ok(()),
            Some((field, _)) if field.trim().is_empty() => Err("[blank-field] the field name is blank".into()),
            _ => Err("[unlocated] no `FIELD: MESSAGE` after the location".into()),
        }
    } else if !overrides.is_empty() && text.starts_with("--set ") {
        if text.contains(": ") { Ok(()) } else { Err("[unlocated] no `: ` after the --set location".into()) }
    } else {
        Err("[unlocated] the error is not located (neither FILE:LINE:COL: nor --set )".into())
    }
}

enum Loaded {
    Accepted(Box<Scenario>),
    Refused,
}

/// Whether a violation (tagged `[kind]`) is one `FAULTLINE_FUZZ_ALLOW` (a comma-separated
/// list of kinds: panic, hang, multi-line, unlocated, bad-location, blank-field,
/// parse-message, run-panic, run-hang) tolerates. For exploring past a known finding while
/// it is being fixed; CI sets nothing, so every finding fails.
fn tolerated(why: &str) -> bool {
    static ALLOW: OnceLock<Vec<String>> = OnceLock::new();
    let allow = ALLOW.get_or_init(|| {
        std::env::var("FAULTLINE_FUZZ_ALLOW")
            .map(|v| v.split(',').map(|k| format!("[{}]", k.trim())).collect())
            .unwrap_or_default()
    });
    allow.iter().any(|k| why.starts_with(k.as_str()))
}

/// Appends an error's text to the file `FAULTLINE_FUZZ_LOG` names, if any: to read what
/// the refusals say.
fn log(text: &str) {
    use std::io::Write;
    static LOG: OnceLock<Option<std::sync::Mutex<std::fs::File>>> = OnceLock::new();
    let log = LOG.get_or_init(|| {
        let path = std::env::var_os("FAULTLINE_FUZZ_LOG")?;
        Some(std::sync::Mutex::new(std::fs::File::options().create(true).append(true).open(path).ok()?))
    });
    if let Some(file) = log {
        let _ = writeln!(file.lock().unwrap_or_else(|e| e.into_inner()), "{text}");
    }
}

/// Loads `bytes` behind the hang guard: the scenario, a refusal that is one located line,
/// or the violation (tagged with its kind).
fn load(file: &str, bytes: &[u8], overrides: &[Override]) -> Result<Loaded, String> {
    let (f, b, o) = (file.to_owned(), bytes.to_vec(), overrides.to_vec());
    let result = guarded(LOAD_HANG, move || Scenario::from_bytes(&f, &b, &o).map_err(|e| e.to_string()))?;
    match result {
        Ok(s) => Ok(Loaded::Accepted(Box::new(s))),
        Err(text) => {
            log(&text);
            match check_located(file, bytes, overrides, &text) {
                Ok(()) => Ok(Loaded::Refused),
                Err(why) if tolerated(&why) => Ok(Loaded::Refused),
                Err(why) => Err(format!("{why}: {}", excerpt(&text))),
            }
        }
    }
}

/// `text` cut to a readable length for a failure message.
fn excerpt(text: &str) -> String {
    const MAX: usize = 600;
    if text.len() <= MAX {
        return format!("{text:?}");
    }
    let head: String = text.chars().take(MAX / 2).collect();
    let tail: String = text.chars().rev().take(MAX / 4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("{head:?} …[{} bytes]… {tail:?}", text.len())
}

/// Saves a failing input where a human can pick it up; returns where.
fn save(test: &str, bytes: &[u8], overrides: &[String]) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz_scenarios");
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join(format!("{test}.toml"));
    let _ = std::fs::write(&file, bytes);
    if !overrides.is_empty() {
        let _ = std::fs::write(dir.join(format!("{test}.set")), overrides.join("\n--set\n"));
    }
    file.display().to_string()
}

// ---------------------------------------------------------------------------------------
// Running an accepted scenario.

/// Runs every case (the first [`MAX_RUN_CASES`] and the last) of `s` under tight limits,
/// as the command line would: quorum and Raft reports, heartbeat signals and detectors.
fn run(mut s: Scenario, seed: u64) -> u64 {
    s.limits.max_events = s.limits.max_events.min(MAX_EVENTS);
    s.limits.max_time = s.limits.max_time.min(MAX_TIME);
    let mut cases: Vec<usize> = (0..s.cases.len().min(MAX_RUN_CASES)).collect();
    cases.push(s.cases.len() - 1);
    cases.dedup();
    let mut events = 0;
    for case in cases {
        let _ = s.describe_faults(case, seed);
        if workload_config::<Quorum>(&s).is_some() {
            let (row, _) = report::run_case(&s, case, seed, None);
            let _ = report::chapter_line(&row);
            events += row.events;
        } else if let Some(r) = workload_config::<Raft>(&s) {
            let row = faultline::protocols::raft::report::run_case(&s, &r.config, case, seed, r.liveness);
            events += row.messages;
        } else if let Some(r) = workload_config::<Pbft>(&s) {
            let (row, _) =
                faultline::protocols::pbft::report::run_case_traced(&s, &r.config, case, seed, r.liveness, None, false);
            events += row.messages;
        } else {
            let h = workload_config::<Heartbeat>(&s).expect("one of the built-in workloads");
            let signals = eval::record(&s, h, case, seed);
            let period = h.swim.as_ref().map_or(Span::from_secs(1), |sw| sw.interval);
            for kind in DetectorKind::ALL {
                if (kind == DetectorKind::Swim && h.swim.is_none())
                    || (kind == DetectorKind::Probe && h.data_probe.is_none())
                {
                    continue;
                }
                for threshold in kind.default_thresholds().into_iter().step_by(4) {
                    let _ = eval::measure(&signals, kind, threshold, period);
                }
            }
            events += 1;
        }
    }
    events
}

// ---------------------------------------------------------------------------------------
// The properties.

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?}: expected a whole number")))
}

fn load_cases() -> u32 {
    env_u64("FAULTLINE_FUZZ_CASES").map_or(DEFAULT_CASES, |n| n.clamp(1, u32::MAX as u64) as u32)
}

fn config(cases: u32) -> Config {
    let default = Config::default();
    let rng_seed = match env_u64("FAULTLINE_FUZZ_SEED") {
        Some(seed) => RngSeed::Fixed(seed),
        // Proptest reads PROPTEST_RNG_SEED into the default; otherwise fix the seed.
        None => match default.rng_seed {
            RngSeed::Random => RngSeed::Fixed(DEFAULT_SEED),
            fixed => fixed,
        },
    };
    Config {
        cases,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed,
        // Failures are kept as files (see `save`) and as plain tests below, not in
        // proptest-regressions/ beside the sources.
        failure_persistence: None,
        // The run property rejects the mutants that do not load, and most do not.
        max_global_rejects: cases.saturating_mul(100),
        // A hang costs LOAD_HANG per shrinking step: stop shrinking after a few minutes.
        max_shrink_time: 180_000,
        ..default
    }
}

/// Runs a property; prints the tally (`--nocapture` shows it) and fails with the
/// shrunk input.
fn check<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    tally: &[(&str, &AtomicU64)],
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    // Wall-clock time for the tally only; nothing under test reads it.
    #[allow(clippy::disallowed_methods)]
    let started = Instant::now();
    let mut runner = TestRunner::new(config(cases));
    let result = runner.run(&strategy, test);
    let counts: Vec<String> = tally.iter().map(|(n, c)| format!("{n} {}", c.load(Ordering::Relaxed))).collect();
    eprintln!("{name}: {cases} cases in {:.1?} ({})", started.elapsed(), counts.join(", "));
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

#[test]
fn mutated_scenarios_load_or_fail_located() {
    static ACCEPTED: AtomicU64 = AtomicU64::new(0);
    static REFUSED: AtomicU64 = AtomicU64::new(0);
    check(
        "mutated_scenarios_load_or_fail_located",
        load_cases(),
        (any::<Index>(), vec(mutation(), 1..=4)),
        &[("accepted", &ACCEPTED), ("refused", &REFUSED)],
        |(file, mutations)| {
            let s = &shipped()[file.index(shipped().len())];
            let bytes = mutate(&s.bytes, &mutations);
            match load(&s.file, &bytes, &[]) {
                Ok(Loaded::Accepted(_)) => ACCEPTED.fetch_add(1, Ordering::Relaxed),
                Ok(Loaded::Refused) => REFUSED.fetch_add(1, Ordering::Relaxed),
                Err(why) => {
                    let saved = save("load", &bytes, &[]);
                    return Err(TestCaseError::fail(format!(
                        "{}: {why}\n  mutations {mutations:?}\n  mutant saved as {saved}\n  mutant {}",
                        s.file,
                        excerpt(&String::from_utf8_lossy(&bytes))
                    )));
                }
            };
            Ok(())
        },
    );
}

#[test]
fn overrides_parse_or_fail_located() {
    static PARSE_REFUSED: AtomicU64 = AtomicU64::new(0);
    static ACCEPTED: AtomicU64 = AtomicU64::new(0);
    static REFUSED: AtomicU64 = AtomicU64::new(0);
    check(
        "overrides_parse_or_fail_located",
        load_cases(),
        (any::<Index>(), vec(override_spec(), 1..=3)),
        &[("refused by Override::parse", &PARSE_REFUSED), ("accepted", &ACCEPTED), ("refused", &REFUSED)],
        |(file, specs)| {
            let s = &shipped()[file.index(shipped().len())];
            let texts: Vec<String> = specs.iter().map(|o| override_text(o, s)).collect();
            let fail = |why: String| {
                let saved = save("set", &s.bytes, &texts);
                let shown: Vec<String> = texts.iter().map(|t| excerpt(t)).collect();
                Err(TestCaseError::fail(format!(
                    "{}: {why}\n  --set {}\n  specs {specs:?}\n  saved as {saved}",
                    s.file,
                    shown.join(" --set ")
                )))
            };
            let mut overrides = Vec::new();
            for t in &texts {
                let owned = t.clone();
                match guarded(LOAD_HANG, move || Override::parse(&owned)) {
                    Err(why) if tolerated(&why) => continue,
                    Err(why) => return fail(format!("Override::parse: {why}")),
                    Ok(Ok(o)) => overrides.push(o),
                    Ok(Err(message)) => {
                        PARSE_REFUSED.fetch_add(1, Ordering::Relaxed);
                        let why = match line_break(&message) {
                            Some(c) => {
                                format!("[parse-message] Override::parse's message is not one line (it holds {c:?})")
                            }
                            None if message.trim().is_empty() => {
                                "[parse-message] Override::parse refused with an empty message".into()
                            }
                            None => continue,
                        };
                        if !tolerated(&why) {
                            return fail(format!("{why}: {}", excerpt(&message)));
                        }
                    }
                }
            }
            if overrides.is_empty() {
                return Ok(());
            }
            match load(&s.file, &s.bytes, &overrides) {
                Ok(Loaded::Accepted(_)) => ACCEPTED.fetch_add(1, Ordering::Relaxed),
                Ok(Loaded::Refused) => REFUSED.fetch_add(1, Ordering::Relaxed),
                Err(why) => return fail(why),
            };
            Ok(())
        },
    );
}

#[test]
fn accepted_mutants_run_without_panicking() {
    static RAN: AtomicU64 = AtomicU64::new(0);
    static REFUSED: AtomicU64 = AtomicU64::new(0);
    // Milder mutants than property 1's, so that more of them load: at most two text
    // mutations, and overrides only of fields the scenario writes.
    let known_override = (any::<Index>(), value_spec()).prop_map(|(i, value)| OverrideSpec {
        key: KeySpec::Known(i),
        value,
        equals: true,
    });
    check(
        "accepted_mutants_run_without_panicking",
        (load_cases() / 16).max(8),
        (any::<Index>(), vec(mutation(), 0..=2), vec(known_override, 0..=2), any::<u64>()),
        &[("ran", &RAN), ("refused (drawn again)", &REFUSED)],
        |(file, mutations, specs, seed)| {
            let s = &shipped()[file.index(shipped().len())];
            let bytes = mutate(&s.bytes, &mutations);
            let texts: Vec<String> = specs.iter().map(|o| override_text(o, s)).collect();
            let overrides: Vec<Override> = texts.iter().filter_map(|t| Override::parse(t).ok()).collect();
            let fail = |why: String| {
                let saved = save("run", &bytes, &texts);
                Err(TestCaseError::fail(format!(
                    "{}: {why}\n  seed {seed}\n  mutations {mutations:?}\n  overrides {texts:?}\n  saved as {saved}",
                    s.file
                )))
            };
            let scenario = match load(&s.file, &bytes, &overrides) {
                Ok(Loaded::Accepted(scenario)) => *scenario,
                Ok(Loaded::Refused) => {
                    // Not a case: the runner draws another until `cases` mutants have run.
                    REFUSED.fetch_add(1, Ordering::Relaxed);
                    return Err(TestCaseError::reject("refused"));
                }
                Err(why) => return fail(why),
            };
            match guarded(RUN_HANG, move || run(scenario, seed)) {
                Ok(_) => RAN.fetch_add(1, Ordering::Relaxed),
                Err(why) => {
                    let why = format!("[run-{}", why.strip_prefix('[').unwrap_or(&why));
                    if !tolerated(&why) {
                        return fail(why);
                    }
                    RAN.fetch_add(1, Ordering::Relaxed)
                }
            };
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------
// Hand-written cases.

fn must_be_located(file: &str, bytes: &[u8], overrides: &[Override]) -> String {
    let (f, b, o) = (file.to_owned(), bytes.to_vec(), overrides.to_vec());
    let text = guarded(LOAD_HANG, move || Scenario::from_bytes(&f, &b, &o).map_err(|e| e.to_string()))
        .expect("loading returns")
        .expect_err("the input is refused");
    check_located(file, bytes, overrides, &text).unwrap_or_else(|why| panic!("{why}: {text}"));
    text
}

#[test]
fn every_shipped_scenario_loads_and_the_mutators_find_their_targets() {
    for s in shipped() {
        Scenario::from_bytes(&s.file, &s.bytes, &[]).unwrap_or_else(|e| panic!("{e}"));
        assert!(!s.paths.is_empty(), "{}", s.file);
        assert!(!value_spans(&s.bytes).is_empty(), "{}", s.file);
        assert!(!string_spans(&s.bytes).is_empty(), "{}", s.file);
    }
    let text = b"a = 1\nb = \"x\" # \"c\"\nc = { d = 1e-10, e = [1, 2] }\n";
    let show = |spans: Vec<Range<usize>>| -> Vec<String> {
        spans.into_iter().map(|r| String::from_utf8_lossy(&text[r]).into_owned()).collect()
    };
    assert_eq!(show(number_spans(text)), ["1", "1e-10", "1", "2"]);
    assert_eq!(show(string_spans(text)), ["x"]);
    assert_eq!(show(value_spans(text)), ["1", "\"x\"", "{ d = 1e-10, e = [1, 2] }", "1e-10", "[1, 2]"]);
}

#[test]
fn a_file_over_the_limit_is_refused_where_the_limit_is_crossed() {
    let mut bytes = shipped()[0].bytes.clone();
    bytes.extend(std::iter::repeat_n(b'#', (1 << 20) + 1 - bytes.len()));
    let text = must_be_located("big.toml", &bytes, &[]);
    assert!(text.contains(": (file): larger than"), "{text}");
}

#[test]
fn invalid_utf8_is_located_at_the_bad_byte() {
    let text = must_be_located("bad.toml", b"name = \"a\"\nseed = 1\xff\n", &[]);
    assert!(text.starts_with("bad.toml:2:9: "), "{text}");
}

#[test]
fn a_truncated_file_is_located() {
    let chapter = &shipped().iter().find(|s| s.file == "scenarios/chapter.toml").expect("chapter").bytes;
    for cut in [0, 1, 7, 100, chapter.len() / 2, chapter.len() - 1] {
        let bytes = &chapter[..cut];
        let (f, b) = ("chapter.toml".to_owned(), bytes.to_vec());
        match guarded(LOAD_HANG, move || Scenario::from_bytes(&f, &b, &[]).map(|_| ()).map_err(|e| e.to_string()))
            .expect("loading returns")
        {
            Ok(()) => {}
            Err(text) => check_located("chapter.toml", bytes, &[], &text).unwrap_or_else(|why| panic!("{why}: {text}")),
        }
    }
}

#[test]
fn an_override_of_many_segments_is_refused_or_located() {
    let chapter = &shipped().iter().find(|s| s.file == "scenarios/chapter.toml").expect("chapter").bytes;
    for key in [vec!["a"; 100_000].join("."), vec!["cases[0]"; 1000].join("."), "quorum.followers.x".to_owned()] {
        let arg = format!("{key}=1");
        if let Ok(o) = Override::parse(&arg) {
            let text = must_be_located("chapter.toml", chapter, &[o]);
            assert!(text.starts_with("--set "), "{}", excerpt(&text));
        }
    }
}

/// A mistake written in the file is located in the file even when `--set` overrides
/// something else: the override must not take the blame.
#[test]
fn a_file_error_under_an_unrelated_override_is_located_in_the_file() {
    let text = "name = \"x\"\nprotocol = \"quorum\"\n[quorum]\nfollowers = \"three\"\n[[cases]]\nname = \"a\"\n";
    let set = Override::parse("seed=7").expect("an override");
    let error = must_be_located("x.toml", text.as_bytes(), &[set]);
    assert!(error.starts_with("x.toml:4:"), "{error}");
    assert!(error.contains("quorum.followers"), "{error}");
    let top = "name = 5\n[[cases]]\nname = \"a\"\n";
    let error = must_be_located("y.toml", top.as_bytes(), &[Override::parse("seed=7").expect("an override")]);
    assert!(error.starts_with("y.toml:1:"), "{error}");
    // A protocol the file names wrongly can still be mended from the command line.
    let wrong =
        "name = \"x\"\nprotocol = \"nope\"\n[quorum]\nfollowers = 4\ndeadline_ms = 200\n[[cases]]\nname = \"a\"\n";
    let mended = Override::parse("protocol=quorum").expect("an override");
    Scenario::from_bytes("z.toml", wrong.as_bytes(), &[mended]).expect("--set protocol mends it");
}

// Regressions: the harness's findings, fixed (see docs/fuzzing.md).

/// Loads `text` as `file`; the violation, if the error is not one located line.
fn violation(file: &str, text: &str) -> Option<String> {
    let (f, b) = (file.to_owned(), text.as_bytes().to_vec());
    let error = guarded(LOAD_HANG, move || Scenario::from_bytes(&f, &b, &[]).map(|_| ()).map_err(|e| e.to_string()))
        .expect("loading returns")
        .expect_err("the input is refused");
    check_located(file, text.as_bytes(), &[], &error).err().map(|why| format!("{file:?} {text:?}: {why}: {error:?}"))
}

/// A key that is empty or all whitespace (`"" = 1`, `" " = 1`, `"\u2028" = 1`) is an unknown
/// field; the error must still name it (the field part must not be blank).
#[test]
fn a_blank_key_is_named_in_the_error() {
    let keys = ["\"\"", "\" \"", "\"\\t\"", "\"\\u2028\"", "\"\\n\""];
    let failures: Vec<String> = keys
        .iter()
        .flat_map(|key| [format!("{key} = 1\n"), format!("[limits]\n{key} = 1\n")])
        .filter_map(|text| violation("x.toml", &text))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The location names the file as given, spaces and all.
#[test]
fn a_file_name_with_spaces_is_kept() {
    let files = ["my  scenario.toml", " lead.toml", "trail .toml"];
    let failures: Vec<String> = files.iter().filter_map(|file| violation(file, "seed = -1\n")).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // A control character in a name is written escaped, never raw: one line, no terminal codes.
    let err = Scenario::from_bytes("dir\twith tab/x.toml", b"seed = -1\n", &[]).unwrap_err().to_string();
    assert!(err.starts_with("dir\\twith tab/x.toml:1:8: seed: "), "{err}");
}
