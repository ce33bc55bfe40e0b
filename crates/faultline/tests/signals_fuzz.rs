//! Property tests for the signals readers (`faultline::signals::parse`): whatever the bytes,
//! reading never panics, yields samples in nondecreasing time order, and ends with at most
//! one error, which is one line starting `FILE:LINE:COL: ` with the line and column within
//! the input. Three properties, each over the four formats:
//!
//! 1. [`arbitrary_bytes_never_panic`]: random bytes (and random text made of the formats'
//!    own pieces).
//! 2. [`mutated_files_read_or_fail_located`]: valid files of each format, mutated (bytes
//!    deleted or inserted, awkward snippets, extreme numbers, lines duplicated or swapped,
//!    truncation, CRLF), up to four mutations at once.
//! 3. [`reading_in_small_pieces_changes_nothing`]: the same bytes handed over a few at a
//!    time (as a followed file or a pipe gives them) read to the same samples and error.
//!
//! Deterministic: a fixed seed (`FAULTLINE_FUZZ_SEED=<u64>` picks another), and
//! `FAULTLINE_FUZZ_CASES=<n>` runs more cases.

use std::io::{self, BufReader, Read};

use faultline::signals::Sample;
use faultline::signals::parse::{Format, Reader};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestCaseError, TestRunner};

/// The file name errors carry (with a space and a colon, which must not confuse the check).
const FILE: &str = "my sig:nals";

const CSV: &str = "time_s,replica,signal,value\n\
                   0,w1,heartbeat_age_s,0.25\n\
                   0,w1,transport,half-open\n\
                   0,\"w,2\",health_ok,1\n\
                   1.5,w1,content_digest,ab12cd\n\
                   1.5,w1,acked_index,17\n\
                   1.5,w1,durable_index,12\n\
                   2,w2,data_latency_ms,3.5\n";

const NDJSON: &str = "{\"time_s\":0,\"replica\":\"w1\",\"signal\":\"heartbeat_age_s\",\"value\":0.5}\n\
                      {\"time_s\":1,\"replica\":\"w1\",\"signal\":\"transport\",\"value\":\"closed\"}\n\
                      \n\
                      {\"time_s\":1,\"replica\":\"w2\",\"signal\":\"content_digest\",\"value\":\"ab12\"}\n\
                      {\"time_s\":2.5,\"replica\":\"w2\",\"signal\":\"ack_latency_ms\",\"value\":\"12.5\"}\n";

const PROMETHEUS: &str = "# HELP faultline_heartbeat_age_s Seconds since the leader heard the replica.\n\
                          # TYPE faultline_heartbeat_age_s gauge\n\
                          faultline_heartbeat_age_s{replica=\"w1\",job=\"kv\"} 0.4 1700000000000\n\
                          process_cpu_seconds_total 12.5\n\
                          transport{replica=\"w1\",state=\"open\"} 1 1700000000000\n\
                          transport{replica=\"w1\",state=\"half-open\"} 0 1700000000000\n\
                          content_digest{replica=\"w\\\"1\",digest=\"ab12cd\"} 1 1700000000000\n\
                          health_ok{replica=\"w2\"} 1 1700000000500\n\
                          retransmits{replica=\"w2\"} 3 1700000001000\n\
                          # EOF\n";

const QUERY_RANGE: &str = "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[\n\
                           {\"metric\":{\"__name__\":\"heartbeat_age_s\",\"replica\":\"w2\"},\
                           \"values\":[[1700000000,\"0.5\"],[1700000015.5,\"9\"]]},\n\
                           {\"metric\":{\"__name__\":\"go_goroutines\"},\"values\":[[1700000000,\"12\"]]},\n\
                           {\"metric\":{\"__name__\":\"faultline_transport\",\"replica\":\"w1\",\"state\":\"refused\"},\
                           \"values\":[[1700000000,\"0\"],[1700000015.5,\"1\"]]},\n\
                           {\"metric\":{\"__name__\":\"content_digest\",\"replica\":\"w1\"},\
                           \"values\":[[1700000000,\"77\"]]}]}}\n";

const VALID: [(Format, &str, usize); 4] = [
    (Format::Csv, CSV, 7),
    (Format::Ndjson, NDJSON, 4),
    (Format::Prometheus, PROMETHEUS, 5),
    (Format::QueryRange, QUERY_RANGE, 4),
];

/// Snippets worth inserting: the formats' own punctuation, extreme numbers, line breaks of
/// every kind, bytes that are not UTF-8, pieces of the other formats.
const SNIPPETS: &[&[u8]] = &[
    b"\"",
    b"\"\"",
    b"\\",
    b"\\\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"=",
    b" ",
    b"\t",
    b"\n",
    b"\r",
    b"\r\n",
    b"\n\n",
    b"#",
    b"# EOF\n",
    b"\0",
    b"\xEF\xBB\xBF",
    b"\xE2\x80\xA8",
    b"\xC2\x85",
    b"\xff",
    b"\xc3",
    b"\xe2\x82",
    b"\xc3\xa9",
    b"NaN",
    b"+Inf",
    b"-Inf",
    b"inf",
    b"-1",
    b"-0",
    b"1e999",
    b"1e-320",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"18446744073709551616",
    b"1.5",
    b"0x10",
    b"time_s,replica,signal,value\n",
    b"{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"x\"}",
    b"{\"time_s\":1,\"replica\":\"w1\",\"signal\":\"health_ok\",\"value\":1}\n",
    b"health_ok{replica=\"w1\"} 1\n",
    b"up{replica=\"w1\"} 1\n",
    b"transport",
    b"half-open",
    b"content_digest",
    b"faultline_",
    b"state=\"open\",",
    b"digest=\"\",",
    b"replica=\"\",",
    b"__name__",
    b"\"resultType\":\"scalar\"",
    b"\"value\":[1,\"1\"]",
    b"[[1,\"2\"]]",
];

const EXTREMES: &[&str] = &[
    "0",
    "-1",
    "-0.0",
    "1e-10",
    "1e308",
    "1e309",
    "NaN",
    "inf",
    "-inf",
    "+Inf",
    "2",
    "0.5",
    "1e",
    "",
    "99999999999999999999",
];

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

fn config(cases: u32) -> Config {
    let cases = env_u64("FAULTLINE_FUZZ_CASES").map_or(cases, |n| n as u32);
    Config {
        cases,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(env_u64("FAULTLINE_FUZZ_SEED").unwrap_or(20_250_601)),
        failure_persistence: None,
        ..Config::default()
    }
}

fn run<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    let mut runner = TestRunner::new(config(cases));
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

/// What reading gives: the samples, then the error's text if there is one.
type Outcome = (Vec<Sample>, Option<String>);

/// Reads `input` whole, checking the reader's contract on the way.
fn read(format: Format, input: impl io::BufRead, bytes: &[u8]) -> Result<Outcome, TestCaseError> {
    let mut samples: Vec<Sample> = Vec::new();
    let mut error = None;
    for item in Reader::new(FILE, format, input) {
        prop_assert!(error.is_none(), "{format}: an item after the error {error:?}");
        match item {
            Ok(sample) => {
                prop_assert!(sample.time_s.is_finite(), "{format}: {sample:?}");
                if let Some(last) = samples.last() {
                    prop_assert!(sample.time_s >= last.time_s, "{format}: {sample:?} after {last:?}");
                }
                prop_assert!(!sample.replica.is_empty(), "{format}: {sample:?}");
                samples.push(sample);
            }
            Err(e) => {
                let text = e.to_string();
                check_located(format, &text, bytes)?;
                error = Some(text);
            }
        }
    }
    prop_assert!(!samples.is_empty() || error.is_some(), "{format}: no samples and no error");
    Ok((samples, error))
}

/// `text` is one line, `FILE:LINE:COL: FIELD: MESSAGE`, located within `bytes`.
fn check_located(format: Format, text: &str, bytes: &[u8]) -> Result<(), TestCaseError> {
    let breaks = ['\n', '\r', '\u{0b}', '\u{0c}', '\u{85}', '\u{2028}', '\u{2029}'];
    prop_assert!(!text.contains(breaks), "{format}: not one line: {text:?}");
    let rest = text.strip_prefix(FILE).and_then(|r| r.strip_prefix(':'));
    let rest = rest.ok_or_else(|| TestCaseError::fail(format!("{format}: not located in {FILE}: {text}")))?;
    let mut parts = rest.splitn(3, ':');
    let (line, column, after) = (parts.next(), parts.next(), parts.next().unwrap_or_default());
    let line: u64 = line.and_then(|l| l.parse().ok()).unwrap_or(0);
    let column: u64 = column.and_then(|c| c.parse().ok()).unwrap_or(0);
    prop_assert!(line >= 1 && column >= 1, "{format}: no line and column: {text}");
    prop_assert!(after.starts_with(' ') && after.len() > 3, "{format}: no field and message: {text}");
    let lines = bytes.split(|&b| b == b'\n').count() as u64;
    prop_assert!(line <= lines.max(1), "{format}: line {line} of {lines}: {text}");
    if let Ok(whole) = std::str::from_utf8(bytes) {
        let this = whole.split('\n').nth(line as usize - 1).unwrap_or_default();
        let chars = this.chars().count() as u64;
        prop_assert!(column <= chars + 1, "{format}: column {column} of a line of {chars}: {text}");
    }
    Ok(())
}

/// A reader that hands its bytes over a few at a time.
struct Pieces<'a> {
    bytes: &'a [u8],
    sizes: Vec<usize>,
    turn: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let size = self.sizes[self.turn % self.sizes.len()];
        self.turn += 1;
        let n = size.min(out.len()).min(self.bytes.len());
        out[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

fn format() -> impl Strategy<Value = Format> {
    select(Format::ALL.to_vec())
}

#[derive(Clone, Debug)]
enum Mutation {
    Delete(Index, usize),
    Insert(Index, Vec<u8>),
    Snippet(Index, Index),
    Extreme(Index, Index),
    DuplicateLine(Index),
    SwapLines(Index, Index),
    Truncate(Index),
    Crlf,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => (any::<Index>(), 1..20usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => (any::<Index>(), vec(any::<u8>(), 1..6)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(i, s)| Mutation::Snippet(i, s)),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(i, s)| Mutation::Extreme(i, s)),
        1 => any::<Index>().prop_map(Mutation::DuplicateLine),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => Just(Mutation::Crlf),
    ]
}

fn lines_of(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes.split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len + 1) };
    match mutation {
        Mutation::Delete(i, n) => {
            let start = at(i, bytes.len()).min(bytes.len());
            let end = (start + n).min(bytes.len());
            bytes.drain(start..end);
        }
        Mutation::Insert(i, b) => {
            let p = at(i, bytes.len());
            bytes.splice(p..p, b.iter().copied());
        }
        Mutation::Snippet(i, s) => {
            let p = at(i, bytes.len());
            bytes.splice(p..p, s.get(SNIPPETS).iter().copied());
        }
        Mutation::Extreme(i, s) => {
            // Replace a run of digits (a number) with an extreme value.
            let runs: Vec<(usize, usize)> = {
                let mut runs = Vec::new();
                let mut k = 0;
                while k < bytes.len() {
                    if bytes[k].is_ascii_digit() {
                        let start = k;
                        while k < bytes.len() && (bytes[k].is_ascii_digit() || bytes[k] == b'.') {
                            k += 1;
                        }
                        runs.push((start, k));
                    } else {
                        k += 1;
                    }
                }
                runs
            };
            if !runs.is_empty() {
                let (start, end) = runs[i.index(runs.len())];
                bytes.splice(start..end, s.get(EXTREMES).bytes());
            }
        }
        Mutation::DuplicateLine(i) => {
            let mut lines = lines_of(bytes);
            if !lines.is_empty() {
                let k = i.index(lines.len());
                let line = lines[k].clone();
                lines.insert(k, line);
                *bytes = lines.concat();
            }
        }
        Mutation::SwapLines(a, b) => {
            let mut lines = lines_of(bytes);
            if !lines.is_empty() {
                let (a, b) = (a.index(lines.len()), b.index(lines.len()));
                lines.swap(a, b);
                *bytes = lines.concat();
            }
        }
        Mutation::Truncate(i) => {
            let p = at(i, bytes.len()).min(bytes.len());
            bytes.truncate(p);
        }
        Mutation::Crlf => {
            let text: Vec<u8> =
                bytes.iter().flat_map(|&b| if b == b'\n' { vec![b'\r', b'\n'] } else { vec![b] }).collect();
            *bytes = text;
        }
    }
}

#[test]
fn the_valid_files_read_whole() {
    for (format, text, count) in VALID {
        let samples: Vec<Sample> = Reader::new(FILE, format, text.as_bytes()).collect::<Result<_, _>>().unwrap();
        assert_eq!(samples.len(), count, "{format}");
        assert_eq!(Format::detect("-", text.as_bytes()), format);
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    let pieces: Vec<&[u8]> = SNIPPETS.iter().copied().chain(VALID.iter().map(|(_, t, _)| t.as_bytes())).collect();
    let bytes = prop_oneof![vec(any::<u8>(), 0..400), vec(select(pieces), 0..12).prop_map(|p| p.concat()),];
    run(768, (format(), bytes), |(format, bytes)| read(format, &bytes[..], &bytes).map(|_| ()));
}

#[test]
fn mutated_files_read_or_fail_located() {
    let file = select(VALID.to_vec());
    run(1024, (file, vec(mutation(), 1..5), any::<bool>()), |((format, text, _), mutations, other_format)| {
        let mut bytes = text.as_bytes().to_vec();
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        // Sometimes read one format's file as another's.
        let format = if other_format {
            Format::ALL[(Format::ALL.iter().position(|&f| f == format).unwrap() + 1) % 4]
        } else {
            format
        };
        read(format, &bytes[..], &bytes).map(|_| ())
    });
}

#[test]
fn reading_in_small_pieces_changes_nothing() {
    let file = select(VALID.to_vec());
    let sizes = vec(1..9usize, 1..5);
    run(384, (file, vec(mutation(), 0..3), sizes, 1..16usize), |((format, text, _), mutations, sizes, capacity)| {
        let mut bytes = text.as_bytes().to_vec();
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        let whole = read(format, &bytes[..], &bytes)?;
        let pieces = BufReader::with_capacity(capacity, Pieces { bytes: &bytes, sizes, turn: 0 });
        let piecewise = read(format, pieces, &bytes)?;
        prop_assert_eq!(whole, piecewise, "{}", String::from_utf8_lossy(&bytes));
        Ok(())
    });
}
