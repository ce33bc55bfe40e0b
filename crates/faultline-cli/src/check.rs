//! `faultline check`: is a history linearizable? Reads Jepsen's EDN or JSON lines, checks
//! with `faultline::linear` (each key apart, in parallel), and prints the verdict with,
//! when it fails, a minimal set of operations that cannot be ordered, the longest
//! partial linearisation and a per-process timeline (text, and SVG with --plot).

// The checker's deadline is a wall-clock budget: a command's job, not the simulator's.
#![allow(clippy::disallowed_methods)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use faultline::linear::parse::{Format as HistoryFormat, MAX_HISTORY_BYTES, parse, read_path};
use faultline::linear::render::{self, call_text};
use faultline::linear::{Budget, Counterexample, ModelKind, Operation, Report, Verdict, check};
use serde_json::{Value, json};

use crate::{Format, Outcome, output};

pub struct Args {
    pub histories: Vec<PathBuf>,
    pub model: ModelKind,
    pub format: Format,
    pub timeout_s: f64,
    pub memo_bytes: usize,
    pub plot: Option<PathBuf>,
    pub input_format: Option<HistoryFormat>,
}

/// Checks every history (each with its own --timeout) and reports them in order. The
/// outcome is the worst verdict: not linearizable, else unknown, else linearizable.
pub fn run(args: Args, out: &mut String) -> Result<Outcome> {
    if args.histories.is_empty() {
        bail!("faultline check needs a history file (Jepsen EDN or JSON lines)");
    }
    if !(args.timeout_s.is_finite() && args.timeout_s > 0.0) {
        bail!("--timeout: must be a positive number of seconds");
    }
    let timeout = Duration::from_secs_f64(args.timeout_s.min(1e9));
    if args.histories.iter().filter(|p| *p == Path::new("-")).count() > 1 {
        bail!("standard input (-) can be read once");
    }
    if let Some(plot) = &args.plot {
        let inputs: Vec<&Path> = args.histories.iter().map(PathBuf::as_path).collect();
        output::check_output(plot, &inputs)?;
    }
    // Parse everything first: a bad file is reported before minutes of checking.
    let histories = args
        .histories
        .iter()
        .map(|p| Ok((p.display().to_string(), read(p, args.input_format, args.model)?)))
        .collect::<Result<Vec<_>>>()?;
    let mut reports = Vec::new();
    for (file, history) in &histories {
        let started = Instant::now();
        let deadline = started + timeout;
        let stop = move || Instant::now() >= deadline;
        let budget = Budget { max_steps: u64::MAX, max_memo_bytes: args.memo_bytes, stop: &stop };
        let report = check(history, args.model, &budget, true);
        reports.push((file.clone(), report, started.elapsed()));
    }
    let worst = reports.iter().map(|(_, r, _)| r.verdict).max().unwrap_or(Verdict::Linearizable);
    match args.format {
        Format::Table => {
            for (file, report, elapsed) in &reports {
                table(out, file, report, *elapsed, args.timeout_s);
            }
        }
        Format::Json => {
            let histories: Vec<Value> = reports.iter().map(|(f, r, e)| json_report(f, r, *e)).collect();
            let all = json!({ "verdict": worst, "linearizable": linearizable(worst), "histories": histories });
            out.push_str(&serde_json::to_string_pretty(&all)?);
            out.push('\n');
        }
    }
    if let Some(plot) = &args.plot {
        match reports.iter().find_map(|(f, r, _)| r.counterexample.as_ref().map(|c| (f, c))) {
            Some((file, c)) => {
                let svg = crate::plot::timeline(&format!("{file}: not linearizable"), c)?;
                output::write_output(plot, &[], |f| Ok(std::io::Write::write_all(f, svg.as_bytes())?))?;
            }
            None => output::eprint_line(&format!(
                "note: --plot {}: no history is proven non-linearizable, so there is no counterexample to draw",
                plot.display()
            )),
        }
    }
    Ok(match worst {
        Verdict::Linearizable => Outcome::Ok,
        Verdict::Unknown => Outcome::Stalled,
        Verdict::NotLinearizable => Outcome::Violated,
    })
}

/// A history file, or standard input for `-` (read to its end, as much as a file may hold).
fn read(path: &Path, format: Option<HistoryFormat>, model: ModelKind) -> Result<faultline::linear::History> {
    if path != Path::new("-") {
        return Ok(read_path(path, format, model)?);
    }
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::io::stdin().lock().take(MAX_HISTORY_BYTES as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > MAX_HISTORY_BYTES {
        return Err(faultline::input::InputError::too_large("-", &bytes, MAX_HISTORY_BYTES, "a history").into());
    }
    let format = format.unwrap_or_else(|| HistoryFormat::detect("-", &bytes));
    Ok(parse("-", &bytes, format, model)?)
}

/// `true`, `false`, or `null` when the budget ran out.
fn linearizable(v: Verdict) -> Value {
    match v {
        Verdict::Linearizable => Value::Bool(true),
        Verdict::NotLinearizable => Value::Bool(false),
        Verdict::Unknown => Value::Null,
    }
}

fn table(out: &mut String, file: &str, r: &Report, elapsed: Duration, timeout_s: f64) {
    let info = r.info;
    let keys = r.partitions.len();
    let _ = writeln!(
        out,
        "{file}: {} ({} model; {}: {} ok, {info} info, {} failed and dropped; {keys} {}; {:.3} s)",
        r.verdict.name(),
        r.model.name(),
        count(r.ops as u64, "operation"),
        r.ops - info,
        r.failed,
        if keys == 1 { "key" } else { "keys" },
        elapsed.as_secs_f64()
    );
    for p in &r.partitions {
        if p.verdict == Verdict::Linearizable && keys > 1 {
            continue;
        }
        let key = p.key.as_deref().map_or_else(|| "the register".to_owned(), |k| format!("key {k}"));
        let why = match p.exhausted {
            Some(faultline::linear::Exhausted::Stopped) => format!(": ran out of time (--timeout {timeout_s})"),
            Some(faultline::linear::Exhausted::Memory) => ": ran out of memory for the search (--memory-mb)".to_owned(),
            Some(faultline::linear::Exhausted::Steps) => ": ran out of search steps".to_owned(),
            None => String::new(),
        };
        let (ops, steps) = (count(p.ops as u64, "operation"), count(p.steps, "search step"));
        let _ = writeln!(out, "  {key}: {} ({ops}, {steps}){why}", p.verdict.name());
    }
    if let Some(c) = &r.counterexample {
        counterexample(out, c);
    }
}

/// `1 operation`, `3 operations`.
fn count(n: u64, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

fn counterexample(out: &mut String, c: &Counterexample) {
    let key = c.key.as_ref().map_or_else(String::new, |k| format!(" of key {k}"));
    let (set, why) = if c.minimal_complete {
        ("a minimal set", "without any one of them, the rest can be ordered")
    } else {
        ("a set", "the reduction ran out of budget before it was minimal")
    };
    let _ = writeln!(
        out,
        "\n  {set} of operations{key} that cannot be ordered ({} of {}; {why}):",
        c.minimal.len(),
        c.partition.len()
    );
    out.push_str(&render::set_text(c, "    "));
    let _ = writeln!(
        out,
        "\n  the longest partial linearisation{key}: {} of {} operations placed, then none can come next:",
        c.longest.len(),
        c.partition.len()
    );
    out.push_str(&render::longest_text(c, "    "));
    let _ = writeln!(
        out,
        "\n  timeline (a column per process, time running down; [ invoked, | in flight, ] returned;\n  \
         * in the set above, #k k-th in the partial linearisation):"
    );
    out.push_str(&render::timeline_text(c, "  "));
}

fn json_op(op: &Operation) -> Value {
    let mut v = json!({
        "process": op.process,
        "f": op.call.f(),
        "call": call_text(op),
        "type": if op.is_info() { "info" } else { "ok" },
        "line": op.line,
    });
    if let Some(out) = &op.output {
        v["value"] = Value::String(out.to_string());
    }
    if let Some(l) = op.complete_line {
        v["complete_line"] = json!(l);
    }
    v
}

fn json_report(file: &str, r: &Report, elapsed: Duration) -> Value {
    let mut v = json!({
        "file": file,
        "model": r.model.name(),
        "verdict": r.verdict,
        "linearizable": linearizable(r.verdict),
        "ops": r.ops,
        "info": r.info,
        "failed": r.failed,
        "elapsed_s": (elapsed.as_secs_f64() * 1e3).round() / 1e3,
        "partitions": r.partitions,
    });
    if let Some(c) = &r.counterexample {
        const LONGEST_JSON: usize = 1000;
        let skip = c.longest.len().saturating_sub(LONGEST_JSON);
        let mut text = String::new();
        let _ = write!(text, "{}", render::timeline_text(c, ""));
        v["counterexample"] = json!({
            "key": c.key.as_ref().map(ToString::to_string),
            "minimal": c.minimal.iter().map(json_op).collect::<Vec<_>>(),
            "minimal_complete": c.minimal_complete,
            "longest_total": c.longest.len(),
            "longest": c.longest.iter().enumerate().skip(skip).map(|(k, (op, state))| {
                let mut o = json_op(op);
                o["place"] = json!(k + 1);
                o["state_after"] = json!(state);
                o
            }).collect::<Vec<_>>(),
            "timeline": text,
        });
    }
    v
}
