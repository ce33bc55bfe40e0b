//! A run's report: the operations and their outcomes, availability, latency, leader
//! changes, the linearizability verdict of `faultline check` on the history, and the
//! diagnoser's verdicts on the signals scored against the nemesis's ground truth.
//!
//! Diagnosis is scored as `faultline diagnose --evaluate` scores simulated runs: the
//! signals are fed to the diagnoser in time order, and after each probe round every
//! member's headline verdict is read. A fault's **time to verdict** is from its start to
//! the first round before its end naming its model; its **accuracy** is the share of rounds naming the
//! model from 2 s after it started (the settling time) to its end. Rounds of members with
//! no fault (from 3 s into the run, and not within 5 s after one of theirs ended) count
//! toward the healthy false-verdict rate.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use faultline::diagnose::{Diagnoser, Model};
use faultline::linear::parse::{Format, parse};
use faultline::linear::{Budget, ModelKind, Verdict, check, render};
use serde::Serialize;

use super::ClusterError;
use super::client::Recorder;
use super::monitor::Observed;
use super::nemesis::{Applied, NemesisLog};
use super::scenario::{Reads, Scenario};

const GRACE_S: f64 = 2.0;
const WARMUP_S: f64 = 3.0;
const AFTER_S: f64 = 5.0;

/// How the diagnoser did on one injected fault.
#[derive(Clone, Debug, Serialize)]
pub struct Scored {
    pub member: String,
    pub fault: &'static str,
    pub expected: String,
    /// Seconds from the fault's start to the first verdict naming its model.
    pub time_to_verdict_s: Option<f64>,
    /// Share of settled rounds naming the model (and the kind, where one is expected).
    pub accuracy: Option<f64>,
    pub accuracy_with_kind: Option<f64>,
    pub rounds: usize,
    /// Headline verdicts (with kind) over the settled rounds, and how often.
    pub verdicts: BTreeMap<String, usize>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Healthy {
    pub rounds: usize,
    pub given_a_fault_verdict: usize,
}

/// Where a member was: its id, the ports it listened on and its routes' addresses.
#[derive(Clone, Debug, Serialize)]
pub struct Endpoint {
    pub name: String,
    pub id: String,
    pub client_port: u16,
    pub peer_port: u16,
    /// The metrics listener, outside the proxy (the monitor's health probe and scrape).
    pub metrics_port: u16,
    pub client_route: String,
    pub peer_route: String,
}

/// What a run came to. `--format json` prints it; docs/real.md lists the keys.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    pub case: String,
    pub members: usize,
    pub reads: Reads,
    pub seed: u64,
    pub duration_s: f64,
    pub ops: u64,
    pub ok: u64,
    pub failed: u64,
    pub info: u64,
    /// Share of operations that got an answer (ok, or a compare-and-set told it lost).
    pub availability: Option<f64>,
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p99: Option<f64>,
    pub leader_changes: usize,
    /// true, false, or null when the checker ran out of time or memory.
    pub linearizable: Option<bool>,
    pub check_seconds: f64,
    /// The counterexample, as `faultline check` prints it, when not linearizable.
    pub counterexample: Option<String>,
    pub faults: Vec<Applied>,
    pub diagnosis: Vec<Scored>,
    pub healthy: Healthy,
    pub endpoints: Vec<Endpoint>,
    /// The members' temporary directory (removed unless `--keep`).
    pub temp_dir: String,
    pub out_dir: String,
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some((sorted[rank - 1] * 10.0).round() / 10.0)
}

#[allow(clippy::too_many_arguments)]
pub fn build(
    scenario: &Scenario,
    case: usize,
    seed: u64,
    out: &Path,
    recorder: &Recorder,
    nemesis: &NemesisLog,
    observed: &Observed,
    duration_s: f64,
    members: usize,
    endpoints: Vec<Endpoint>,
    temp_dir: &Path,
) -> Result<Report, ClusterError> {
    let history = parse("history.edn", recorder.edn.as_bytes(), Format::Edn, ModelKind::Register)
        .map_err(|e| ClusterError::Output(format!("the recorded history does not read back: {e}")))?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(scenario.check_timeout_s);
    // The checker's deadline is wall-clock time: a budget, not part of any simulation.
    let stop = move || Instant::now() >= deadline;
    let budget = Budget { max_steps: u64::MAX, max_memo_bytes: (scenario.check_memory_mb as usize) << 20, stop: &stop };
    let checked = check(&history, ModelKind::Register, &budget, true);
    let check_seconds = started.elapsed().as_secs_f64();
    let linearizable = match checked.verdict {
        Verdict::Linearizable => Some(true),
        Verdict::NotLinearizable => Some(false),
        Verdict::Unknown => None,
    };
    let counterexample = checked.counterexample.as_ref().map(|c| {
        let key = c.key.as_ref().map_or_else(String::new, |k| format!(" of key {k}"));
        let mut s = String::new();
        let _ = writeln!(s, "operations{key} that cannot be ordered ({} of {}):", c.minimal.len(), c.partition.len());
        s.push_str(&render::set_text(c, "  "));
        let _ =
            writeln!(s, "the longest partial linearisation{key}: {} of {} placed:", c.longest.len(), c.partition.len());
        s.push_str(&render::longest_text(c, "  "));
        let _ = writeln!(s, "timeline (a column per process; [ invoked, | in flight, ] returned; * in the set above):");
        s.push_str(&render::timeline_text(c, ""));
        s
    });
    let mut latencies = recorder.latencies_ms.clone();
    latencies.sort_by(f64::total_cmp);
    let answered = recorder.outcomes.iter().filter(|(_, a)| *a).count();
    let availability = (!recorder.outcomes.is_empty())
        .then(|| (answered as f64 / recorder.outcomes.len() as f64 * 1000.0).round() / 1000.0);
    let (diagnosis, healthy) = score(observed, &nemesis.applied, members, duration_s);
    Ok(Report {
        scenario: scenario.name.clone(),
        case: scenario.cases[case].name.clone(),
        members,
        reads: scenario.reads,
        seed,
        duration_s: (duration_s * 10.0).round() / 10.0,
        ops: recorder.ops,
        ok: recorder.ok,
        failed: recorder.failed,
        info: recorder.info,
        availability,
        latency_ms_p50: percentile(&latencies, 0.5),
        latency_ms_p99: percentile(&latencies, 0.99),
        leader_changes: observed.leaders.len().saturating_sub(1),
        linearizable,
        check_seconds: (check_seconds * 1000.0).round() / 1000.0,
        counterexample,
        faults: nemesis.applied.clone(),
        diagnosis,
        healthy,
        endpoints,
        temp_dir: temp_dir.display().to_string(),
        out_dir: out.display().to_string(),
    })
}

fn verdict_name(model: Model, kind: Option<&str>) -> String {
    match kind {
        Some(k) => format!("{} ({k})", model.name()),
        None => model.name().to_owned(),
    }
}

/// Each member's headline verdict and its kind, after one probe round.
type Verdicts = BTreeMap<String, (Model, Option<&'static str>)>;

/// Feeds the samples to the diagnoser and scores each fault's rounds.
fn score(observed: &Observed, applied: &[Applied], members: usize, end_s: f64) -> (Vec<Scored>, Healthy) {
    let mut diagnoser = Diagnoser::default();
    // After each probe round: the round's time and each member's (model, kind).
    let mut rounds: Vec<(f64, Verdicts)> = Vec::new();
    let samples = &observed.samples;
    for (i, s) in samples.iter().enumerate() {
        diagnoser.push(s);
        if samples.get(i + 1).is_none_or(|next| next.time_s > s.time_s) {
            let verdicts = diagnoser.report().verdicts().into_iter().map(|(r, m, k)| (r, (m, k))).collect();
            rounds.push((s.time_s, verdicts));
        }
    }
    let mut scored = Vec::new();
    for a in applied {
        let end = a.end_s.unwrap_or(end_s);
        let names = |m: Model| m.name() == a.model;
        let first = rounds
            .iter()
            .filter(|(t, _)| *t >= a.start_s && *t <= end)
            .find(|(_, v)| v.get(&a.member).is_some_and(|(m, _)| names(*m)))
            .map(|(t, _)| ((t - a.start_s) * 100.0).round() / 100.0);
        let settled: Vec<(Model, Option<&str>)> = rounds
            .iter()
            .filter(|(t, _)| *t >= a.start_s + GRACE_S && *t <= end)
            .filter_map(|(_, v)| v.get(&a.member).copied())
            .collect();
        let mut verdicts = BTreeMap::new();
        for (m, k) in &settled {
            *verdicts.entry(verdict_name(*m, *k)).or_insert(0) += 1;
        }
        let share =
            |hits: usize| (!settled.is_empty()).then(|| (hits as f64 / settled.len() as f64 * 1000.0).round() / 1000.0);
        let right = settled.iter().filter(|(m, _)| names(*m)).count();
        let right_kind =
            settled.iter().filter(|(m, k)| names(*m) && (a.model_kind.is_none() || *k == a.model_kind)).count();
        scored.push(Scored {
            member: a.member.clone(),
            fault: a.kind,
            expected: verdict_name_str(a.model, a.model_kind),
            time_to_verdict_s: first,
            accuracy: share(right),
            accuracy_with_kind: share(right_kind),
            rounds: settled.len(),
            verdicts,
        });
    }
    let mut healthy = Healthy::default();
    for (t, v) in &rounds {
        if *t < WARMUP_S {
            continue;
        }
        for m in 0..members {
            let name = format!("m{m}");
            let touched =
                applied.iter().any(|a| a.member == name && *t >= a.start_s && *t <= a.end_s.unwrap_or(end_s) + AFTER_S);
            if touched {
                continue;
            }
            if let Some((model, _)) = v.get(&name) {
                healthy.rounds += 1;
                healthy.given_a_fault_verdict += (*model != Model::Healthy) as usize;
            }
        }
    }
    (scored, healthy)
}

fn verdict_name_str(model: &str, kind: Option<&str>) -> String {
    match kind {
        Some(k) => format!("{model} ({k})"),
        None => model.to_owned(),
    }
}

fn opt(x: Option<f64>, unit: &str) -> String {
    x.map_or("-".to_owned(), |v| format!("{v}{unit}"))
}

impl Report {
    /// The report as text (what `faultline cluster` prints, and `report.txt`).
    pub fn text(&self) -> String {
        let mut s = String::new();
        let verdict = match self.linearizable {
            Some(true) => "linearizable",
            Some(false) => "NOT linearizable",
            None => "unknown (the checker ran out of budget)",
        };
        let _ = writeln!(s, "{} / {}: {verdict}", self.scenario, self.case);
        let _ = writeln!(
            s,
            "  {} members, {} reads, seed {}, {:.1} s; output in {}",
            self.members,
            match self.reads {
                Reads::Linearizable => "linearizable",
                Reads::Serializable => "serializable",
            },
            self.seed,
            self.duration_s,
            self.out_dir
        );
        let _ = writeln!(
            s,
            "  {} operations: {} ok, {} failed, {} info; availability {}; latency p50 {} p99 {}; {} leader change{}",
            self.ops,
            self.ok,
            self.failed,
            self.info,
            self.availability.map_or("-".into(), |a| format!("{:.1} %", a * 100.0)),
            opt(self.latency_ms_p50, " ms"),
            opt(self.latency_ms_p99, " ms"),
            self.leader_changes,
            if self.leader_changes == 1 { "" } else { "s" }
        );
        if !self.faults.is_empty() {
            let _ = writeln!(s, "  faults and what the diagnoser named:");
        }
        for (f, d) in self.faults.iter().zip(&self.diagnosis) {
            let end = f.end_s.map_or("-".to_owned(), |e| format!("{e:.1}"));
            let verdicts: Vec<String> = d.verdicts.iter().map(|(v, n)| format!("{v} x{n}")).collect();
            let _ = writeln!(
                s,
                "    {} {}{} {:.1}-{end} s: expected {}; time to verdict {}; accuracy {} (with kind {}); named {}",
                f.kind,
                f.member,
                if f.was_leader { " (leader)" } else { "" },
                f.start_s,
                d.expected,
                opt(d.time_to_verdict_s, " s"),
                opt(d.accuracy, ""),
                opt(d.accuracy_with_kind, ""),
                if verdicts.is_empty() { "-".to_owned() } else { verdicts.join(", ") }
            );
        }
        let _ = writeln!(
            s,
            "  members without a fault: {} of {} rounds given a fault verdict",
            self.healthy.given_a_fault_verdict, self.healthy.rounds
        );
        if let Some(c) = &self.counterexample {
            let _ = writeln!(s, "\n{}", c.trim_end());
        }
        s
    }
}
