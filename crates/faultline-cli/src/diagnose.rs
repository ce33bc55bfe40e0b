//! `faultline diagnose`: signals files in, verdicts out. Several files are merged in time
//! order as they are read (each is read once, streaming), so memory stays bounded by the
//! number of replicas however long the files are.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::BTreeMap;
use std::ops::Range;

use anyhow::{Result, bail};
use faultline::diagnose::{Diagnoser, Report};
use faultline::observe::evaluate::{self, Score};
use faultline::scenario::Scenario;
use faultline::signals::parse::{Format as SignalsFormat, Reader};
use faultline::signals::{Sample, Signal, SignalsError};
use faultline::time::{Span, Time};
use faultline::workload::Registry;
use rayon::prelude::*;

use crate::Format;
use crate::output;

/// A reader of a growing file: at the end it waits for more instead of stopping (`tail -f`).
/// Only `faultline diagnose --follow` uses it; it sleeps on the wall clock, outside any
/// simulation.
struct Follow<R>(R);

impl<R: Read> Read for Follow<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.0.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

type Samples = Reader<Box<dyn BufRead>>;

/// Opens one signals file (`-`: standard input) as a stream of samples.
fn open(path: &Path, format: Option<SignalsFormat>, follow: bool) -> Result<Samples> {
    let name = path.display().to_string();
    let mut input: Box<dyn BufRead> = if name == "-" {
        Box::new(BufReader::with_capacity(1 << 16, std::io::stdin()))
    } else {
        let file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{name}: cannot open: {e}"))?;
        if follow {
            Box::new(BufReader::with_capacity(1 << 16, Follow(file)))
        } else {
            Box::new(BufReader::with_capacity(1 << 16, file))
        }
    };
    let format = match format {
        Some(f) => f,
        // Sniffing reads the first bytes without consuming them (a followed file that is
        // still empty is waited for).
        None => {
            let head = input.fill_buf()?.to_vec();
            SignalsFormat::detect(&name, &head)
        }
    };
    let display = if name == "-" { "(stdin)".to_owned() } else { name };
    Ok(Reader::new(&display, format, input))
}

/// Merges time-ordered streams into one, in time order (ties go to the earlier file), and
/// refuses a sample two files both give (the same time, replica and signal): the check
/// each reader makes within its file, across files.
struct Merge {
    streams: Vec<(Samples, Option<(Sample, u64)>)>,
    /// At the current time: (replica, signal) -> (stream, line) of the sample given.
    seen: BTreeMap<(String, Signal), (usize, u64)>,
    time: Option<f64>,
}

impl Merge {
    fn new(readers: Vec<Samples>) -> Merge {
        Merge { streams: readers.into_iter().map(|r| (r, None)).collect(), seen: BTreeMap::new(), time: None }
    }

    /// Fills stream `i`'s look-ahead; an error ends the merge.
    fn fill(&mut self, i: usize) -> Result<(), SignalsError> {
        let (reader, ahead) = &mut self.streams[i];
        if ahead.is_none()
            && let Some(next) = reader.next()
        {
            let line = reader.line();
            *ahead = Some((next?, line));
        }
        Ok(())
    }
}

impl Iterator for Merge {
    type Item = Result<Sample, SignalsError>;
    fn next(&mut self) -> Option<Self::Item> {
        let mut best: Option<(usize, f64)> = None;
        for i in 0..self.streams.len() {
            if let Err(e) = self.fill(i) {
                return Some(Err(e));
            }
            if let Some((x, _)) = &self.streams[i].1
                && best.is_none_or(|(_, t)| x.time_s < t)
            {
                best = Some((i, x.time_s));
            }
        }
        let (i, t) = best?;
        let (sample, line) = self.streams[i].1.take().expect("filled");
        if self.time != Some(t) {
            self.time = Some(t);
            self.seen.clear();
        }
        let key = (sample.replica.clone(), sample.signal);
        if let Some(&(j, other)) = self.seen.get(&key)
            && j != i
        {
            let file = self.streams[i].0.file().to_owned();
            let first = self.streams[j].0.file().to_owned();
            return Some(Err(SignalsError::at(
                &file,
                line,
                1,
                "(sample)",
                format!(
                    "duplicate: {} of {} at time_s {t} was given by {first} line {other} too (merged files must not overlap)",
                    sample.signal, sample.replica
                ),
            )));
        }
        self.seen.insert(key, (i, line));
        Some(Ok(sample))
    }
}

pub struct Args {
    pub files: Vec<PathBuf>,
    pub format: Format,
    pub at: Option<f64>,
    pub follow: bool,
    pub input_format: Option<SignalsFormat>,
}

pub fn run(args: Args, out: &mut String) -> Result<()> {
    if args.files.is_empty() {
        bail!("faultline diagnose needs a signals file (or - for standard input), or --evaluate");
    }
    if args.at.is_some_and(|t| !t.is_finite()) {
        bail!("--at: not a finite time");
    }
    let streams: Vec<Samples> =
        args.files.iter().map(|p| open(p, args.input_format, args.follow)).collect::<Result<_>>()?;
    let mut diagnoser = Diagnoser::default();
    let mut last_printed: Option<Vec<_>> = None;
    let mut read_any = false;
    for sample in Merge::new(streams) {
        let sample = sample?;
        if args.at.is_some_and(|at| sample.time_s > at) {
            break;
        }
        // Following: a new timestamp completes the last one; print when a verdict changed.
        if args.follow && diagnoser.now.is_some_and(|now| sample.time_s > now) {
            let report = diagnoser.report();
            if last_printed.as_ref() != Some(&report.verdicts()) {
                last_printed = Some(report.verdicts());
                output::print(render(&report, args.format, false)?.as_bytes())?;
            }
        }
        diagnoser.push(&sample);
        read_any = true;
    }
    if !read_any {
        let at = args.at.map_or(String::new(), |t| format!(" at or before --at {t}"));
        bail!("no samples to diagnose{at}");
    }
    // As of the last sample read (at or before --at): what the verdicts rest on.
    let report = diagnoser.report();
    if !args.follow || last_printed.as_ref() != Some(&report.verdicts()) {
        out.push_str(&render(&report, args.format, !args.follow)?);
    }
    Ok(())
}

/// A report as a table, or as JSON (one line per report when following: NDJSON).
fn render(report: &Report, format: Format, pretty: bool) -> Result<String> {
    Ok(match format {
        Format::Table if !pretty => format!("{}\n", report.table()),
        Format::Table => report.table(),
        Format::Json if pretty => format!("{}\n", serde_json::to_string_pretty(report)?),
        Format::Json => format!("{}\n", serde_json::to_string(report)?),
    })
}

/// The observers' sampling interval in evaluated runs, and how long each is observed at most.
const EVAL_INTERVAL_MS: u64 = 100;
const EVAL_MAX_S: u64 = 60;
/// Intervals this soon after a replica's faults changed are transitions: they count toward
/// time to verdict, not accuracy. The first seconds of a run count toward nothing.
const GRACE_S: f64 = 2.0;
const WARMUP_S: f64 = 3.0;

/// The scenario files under `paths` (a folder's `*.toml`, sorted), or the built-in suite.
fn scenarios(registry: &Registry, paths: &[PathBuf], suite: &str) -> Result<Vec<(String, Scenario)>> {
    if paths.is_empty() {
        let name = "scenarios/diagnosis/suite.toml";
        return Ok(vec![(name.to_owned(), registry.parse(name, suite, &[])?)]);
    }
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| anyhow::anyhow!("{}: cannot read the folder: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "toml"))
                .collect();
            inside.sort();
            if inside.is_empty() {
                bail!("{}: no scenario files (*.toml) in the folder", p.display());
            }
            files.extend(inside);
        } else {
            files.push(p.clone());
        }
    }
    files.into_iter().map(|f| Ok((f.display().to_string(), registry.load(&f, &[])?))).collect()
}

/// `faultline diagnose --evaluate`: labelled runs, scored.
pub fn evaluate(
    registry: &Registry,
    paths: &[PathBuf],
    seeds: Range<u64>,
    format: Format,
    suite: &str,
    out: &mut String,
) -> Result<()> {
    let scenarios = scenarios(registry, paths, suite)?;
    for (file, s) in &scenarios {
        let w = registry.get(s.protocol()).expect("a loaded scenario's workload is registered");
        if !w.observable() {
            let observable: Vec<&str> = registry.iter().filter(|w| w.observable()).map(|w| w.name()).collect();
            bail!(
                "{file}: --evaluate cannot observe protocol {:?} (it can observe: {})",
                s.protocol(),
                observable.join(", ")
            );
        }
    }
    let mut jobs: Vec<(usize, usize, u64)> = Vec::new();
    for (i, (_, s)) in scenarios.iter().enumerate() {
        for c in 0..s.cases.len() {
            jobs.extend(seeds.clone().map(|seed| (i, c, seed)));
        }
    }
    let interval = Span::from_millis(EVAL_INTERVAL_MS);
    // Runs in parallel; scores merged in job order, so the figures do not depend on threads.
    let scores: Vec<(usize, Score)> = jobs
        .par_iter()
        .map(|&(i, c, seed)| {
            let s = &scenarios[i].1;
            let until = Time::from_nanos(s.limits.max_time.as_nanos().min(EVAL_MAX_S * 1_000_000_000));
            let w = registry.get(s.protocol()).expect("registered");
            let rec = w.record(s, c, seed, interval, until).expect("an observable workload records");
            (i, evaluate::score(rec, GRACE_S, WARMUP_S))
        })
        .collect();
    // Fixed cases (each fault at its stated intensity) make the headline figures; swarm
    // cases (faults, intensities and targets drawn per seed) are reported beside them.
    let mut per_case: BTreeMap<(usize, usize), Score> = BTreeMap::new();
    let (mut fixed, mut swarm) = (Score::default(), Score::default());
    for ((i, c, _), (_, score)) in jobs.iter().zip(scores) {
        let entry = per_case.entry((*i, *c)).or_default();
        *entry = std::mem::take(entry).merge(score.clone());
        if scenarios[*i].1.cases[*c].swarm.is_some() {
            swarm = swarm.merge(score);
        } else {
            fixed = fixed.merge(score);
        }
    }
    let cases: Vec<(String, &Score)> =
        per_case.iter().map(|(&(i, c), sc)| (scenarios[i].1.cases[c].name.clone(), sc)).collect();
    let swarm = (swarm.runs > 0).then_some(&swarm);
    match format {
        Format::Table => out.push_str(&evaluate::table(&fixed, swarm, &cases, seeds.end - seeds.start)),
        Format::Json => {
            out.push_str(&format!("{}\n", serde_json::to_string_pretty(&evaluate::json(&fixed, swarm, &cases))?));
        }
    }
    Ok(())
}
