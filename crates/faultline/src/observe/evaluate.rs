//! How right the diagnoser is (`faultline diagnose --evaluate`): a recorded run's signals
//! go through the diagnoser interval by interval, as a live export would, and each
//! replica's verdict is scored against the ground truth of that interval. Beside it, the
//! same for a baseline that reads heartbeats only and marks a silent replica dead: what
//! the chapter's "mark it dead" runbook sees.
//!
//! Scoring (docs/diagnosis.md, "Measured"):
//! - an interval is *settled* once `grace` seconds have passed since the replica's faults
//!   last changed (a fault began or ended); only settled intervals count toward accuracy,
//!   and the first `warmup` seconds of a run (the cluster electing its first leader, the
//!   probes filling their history) count toward nothing;
//! - a healthy interval is right when the verdict is `healthy`; a single-model interval
//!   when the headline verdict names that model; a mix when every model in force is named
//!   (headline or `also`);
//! - time to verdict runs from a fault's onset to the first interval whose verdicts name
//!   its model, settled or not.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Recording;
use crate::diagnose::{Diagnoser, Model as Verdict, ReplicaVerdict};
use crate::signals::Signal;

/// The figures of one diagnoser (the real one, or the baseline).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Tally {
    pub single_right: u64,
    pub single_total: u64,
    pub mix_right: u64,
    pub mix_total: u64,
    pub healthy_false: u64,
    pub healthy_total: u64,
    /// Settled single-model and healthy intervals: true model -> headline verdict -> count.
    pub confusion: BTreeMap<String, BTreeMap<String, u64>>,
    /// Seconds from each fault's onset to the right verdict.
    pub times_s: Vec<f64>,
    /// Onsets never diagnosed while the fault was in force.
    pub missed: u64,
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        self.single_right += o.single_right;
        self.single_total += o.single_total;
        self.mix_right += o.mix_right;
        self.mix_total += o.mix_total;
        self.healthy_false += o.healthy_false;
        self.healthy_total += o.healthy_total;
        for (row, cols) in o.confusion {
            let mine = self.confusion.entry(row).or_default();
            for (col, k) in cols {
                *mine.entry(col).or_default() += k;
            }
        }
        self.times_s.extend(o.times_s);
        self.missed += o.missed;
    }

    pub fn single_accuracy(&self) -> Option<f64> {
        ratio(self.single_right, self.single_total)
    }
    pub fn mix_accuracy(&self) -> Option<f64> {
        ratio(self.mix_right, self.mix_total)
    }
    pub fn healthy_false_rate(&self) -> Option<f64> {
        ratio(self.healthy_false, self.healthy_total)
    }
    pub fn median_time_s(&self) -> Option<f64> {
        crate::diagnose::median(self.times_s.clone())
    }

    /// Precision and recall of each model's verdict, from the confusion matrix.
    pub fn precision_recall(&self) -> BTreeMap<String, (Option<f64>, Option<f64>)> {
        let mut out = BTreeMap::new();
        for m in Verdict::ALL.iter().map(|m| m.name()).filter(|m| *m != "cannot-tell") {
            let tp = self.confusion.get(m).and_then(|c| c.get(m)).copied().unwrap_or(0);
            let said: u64 = self.confusion.values().filter_map(|c| c.get(m)).sum();
            let truly: u64 = self.confusion.get(m).map_or(0, |c| c.values().sum());
            out.insert(m.to_owned(), (ratio(tp, said), ratio(tp, truly)));
        }
        out
    }
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Both diagnosers' figures over some runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Score {
    pub runs: u64,
    pub diagnoser: Tally,
    pub baseline: Tally,
}

impl Score {
    pub fn merge(mut self, o: Score) -> Score {
        self.runs += o.runs;
        self.diagnoser.merge(o.diagnoser);
        self.baseline.merge(o.baseline);
        self
    }
}

/// What scoring needs of a verdict: its headline, and every model it names (the headline
/// and everything in `also`).
struct Named {
    headline: &'static str,
    names: Vec<&'static str>,
}

impl Named {
    fn of(v: &ReplicaVerdict) -> Named {
        let names = std::iter::once(v.verdict).chain(v.also.iter().map(|f| f.verdict)).map(|m| m.name()).collect();
        Named { headline: v.verdict.name(), names }
    }
}

/// What "mark it dead" says: a replica whose heartbeat is late is dead, any other healthy.
fn baseline(v: &ReplicaVerdict) -> Named {
    let dead = matches!(v.verdict, Verdict::CannotTell | Verdict::Crash);
    let headline = if dead { Verdict::Crash } else { Verdict::Healthy }.name();
    Named { headline, names: vec![headline] }
}

/// Per replica: its models in force, since when they have held, and the onsets waiting
/// for a verdict (model, when).
#[derive(Default)]
struct Track {
    models: Vec<&'static str>,
    since: f64,
    waiting: Vec<(&'static str, f64)>,
}

/// Scores one recorded run.
pub fn score(rec: Recording, grace_s: f64, warmup_s: f64) -> Score {
    let mut full = Diagnoser::default();
    let mut beats = Diagnoser::default();
    let mut score = Score { runs: 1, ..Score::default() };
    let mut tracks: BTreeMap<&str, [Track; 2]> = BTreeMap::new();
    let mut labels = rec.labels.iter().peekable();
    let mut samples = rec.samples.into_iter().peekable();
    while let Some(first) = samples.peek() {
        let t = first.time_s;
        while let Some(s) = samples.next_if(|s| s.time_s == t) {
            if s.signal == Signal::HeartbeatAge {
                beats.push(&s);
            }
            full.push_owned(s);
        }
        let report = full.report();
        let base = beats.report();
        while let Some(l) = labels.next_if(|l| l.time_s <= t) {
            if l.time_s < t {
                continue;
            }
            let mut models: Vec<&'static str> = l.faults.iter().map(|(_, m)| m.name()).collect();
            models.sort_unstable();
            models.dedup();
            let verdict = report.replicas.iter().find(|r| r.replica == l.replica).map(Named::of);
            // A replica the baseline has no heartbeat for (the leader) it leaves alone.
            let base_verdict = Some(base.replicas.iter().find(|r| r.replica == l.replica).map_or_else(
                || Named { headline: Verdict::Healthy.name(), names: vec![Verdict::Healthy.name()] },
                baseline,
            ));
            let tracks = tracks.entry(l.replica.as_str()).or_default();
            for (i, (v, tally)) in
                [(verdict, &mut score.diagnoser), (base_verdict, &mut score.baseline)].into_iter().enumerate()
            {
                let track = &mut tracks[i];
                if track.models != models {
                    // Onsets: models newly in force wait for their verdict.
                    for m in models.iter().filter(|m| !track.models.contains(m)) {
                        track.waiting.push((m, t));
                    }
                    let gone: Vec<&str> = track.models.iter().filter(|m| !models.contains(m)).copied().collect();
                    let (missed, kept): (Vec<_>, Vec<_>) = track.waiting.drain(..).partition(|(m, _)| gone.contains(m));
                    tally.missed += missed.len() as u64;
                    track.waiting = kept;
                    track.models = models.clone();
                    track.since = t;
                }
                let names = v.as_ref().map(|v| v.names.clone()).unwrap_or_default();
                track.waiting.retain(|&(m, onset)| {
                    let found = names.contains(&m);
                    if found {
                        tally.times_s.push(t - onset);
                    }
                    !found
                });
                if t < warmup_s || t - track.since < grace_s {
                    continue;
                }
                let headline = v.as_ref().map_or("cannot-tell", |v| v.headline);
                match models.len() {
                    0 => {
                        tally.healthy_total += 1;
                        tally.healthy_false += (headline != "healthy") as u64;
                    }
                    1 => {
                        tally.single_total += 1;
                        tally.single_right += (headline == models[0]) as u64;
                    }
                    _ => {
                        tally.mix_total += 1;
                        tally.mix_right += models.iter().all(|m| names.contains(m)) as u64;
                    }
                }
                if models.len() <= 1 {
                    let row = models.first().copied().unwrap_or("healthy");
                    *tally.confusion.entry(row.to_owned()).or_default().entry(headline.to_owned()).or_default() += 1;
                }
            }
        }
    }
    // Faults still waiting for their verdict when the run ended were never named.
    for tracks in tracks.values() {
        score.diagnoser.missed += tracks[0].waiting.len() as u64;
        score.baseline.missed += tracks[1].waiting.len() as u64;
    }
    score
}

fn pct(x: Option<f64>) -> String {
    x.map_or("-".to_owned(), |x| format!("{:.2} %", x * 100.0))
}

fn secs(x: Option<f64>) -> String {
    x.map_or("-".to_owned(), |x| format!("{x:.2} s"))
}

const COLUMNS: [&str; 7] = ["healthy", "crash", "omission", "timing", "byzantine", "gray", "cannot-tell"];

fn confusion_table(out: &mut String, title: &str, t: &Tally) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "\n{title} (settled intervals; rows: the truth, columns: the headline verdict)");
    let _ = write!(out, "{:<11}", "truth");
    for c in COLUMNS {
        let _ = write!(out, " {c:>11}");
    }
    out.push('\n');
    for row in COLUMNS.iter().filter(|r| t.confusion.contains_key(**r)) {
        let _ = write!(out, "{row:<11}");
        for c in COLUMNS {
            let k = t.confusion.get(*row).and_then(|r| r.get(c)).copied().unwrap_or(0);
            let _ = write!(out, " {k:>11}");
        }
        out.push('\n');
    }
}

/// The table `faultline diagnose --evaluate` prints.
pub fn table(total: &Score, swarm: Option<&Score>, cases: &[(String, &Score)], seeds: u64) -> String {
    use std::fmt::Write as _;
    let (d, b) = (&total.diagnoser, &total.baseline);
    let mut out = String::new();
    let runs = total.runs + swarm.map_or(0, |s| s.runs);
    let _ = writeln!(out, "{runs} labelled runs ({} cases x {seeds} seeds)", cases.len());
    if swarm.is_some() {
        let _ = writeln!(out, "fixed cases (each fault at its stated intensity; swarm cases below):");
    }
    let _ = writeln!(out, "{:<46} {:>12} {:>12}", "", "diagnoser", "heartbeats");
    let rows: [(&str, String, String); 5] = [
        ("single-fault intervals right", pct(d.single_accuracy()), pct(b.single_accuracy())),
        ("two-fault intervals, both models named", pct(d.mix_accuracy()), pct(b.mix_accuracy())),
        ("healthy intervals given a fault verdict", pct(d.healthy_false_rate()), pct(b.healthy_false_rate())),
        ("median time from onset to the right verdict", secs(d.median_time_s()), secs(b.median_time_s())),
        ("faults never named while in force", d.missed.to_string(), b.missed.to_string()),
    ];
    for (label, x, y) in rows {
        let _ = writeln!(out, "{label:<46} {x:>12} {y:>12}");
    }
    let _ = writeln!(
        out,
        "({} single-fault, {} two-fault and {} healthy settled replica-intervals)",
        d.single_total, d.mix_total, d.healthy_total
    );
    if let Some(sw) = swarm {
        let (d, b) = (&sw.diagnoser, &sw.baseline);
        let _ = writeln!(
            out,
            "\nswarm cases ({} runs: kinds, intensities and targets drawn per seed, the leader included)",
            sw.runs
        );
        let rows: [(&str, String, String); 4] = [
            ("single-fault intervals right", pct(d.single_accuracy()), pct(b.single_accuracy())),
            ("two-fault intervals, both models named", pct(d.mix_accuracy()), pct(b.mix_accuracy())),
            ("healthy intervals given a fault verdict", pct(d.healthy_false_rate()), pct(b.healthy_false_rate())),
            ("median time from onset to the right verdict", secs(d.median_time_s()), secs(b.median_time_s())),
        ];
        for (label, x, y) in rows {
            let _ = writeln!(out, "{label:<46} {x:>12} {y:>12}");
        }
    }
    confusion_table(&mut out, "diagnoser", d);
    confusion_table(&mut out, "heartbeat-only baseline (\"mark it dead\")", b);
    let _ = writeln!(out, "\nprecision / recall per verdict (diagnoser; baseline)");
    let (pd, pb) = (d.precision_recall(), b.precision_recall());
    for (m, (p, r)) in &pd {
        let (bp, br) = pb.get(m).copied().unwrap_or((None, None));
        let _ = writeln!(out, "{m:<11} {:>9} / {:<9}  {:>9} / {:<9}", pct(*p), pct(*r), pct(bp), pct(br));
    }
    let _ = writeln!(
        out,
        "\nper case: single-fault right, mixes right, healthy given a fault verdict, median time to verdict"
    );
    for (name, s) in cases {
        let t = &s.diagnoser;
        let _ = writeln!(
            out,
            "{name:<24} {:>9} {:>9} {:>9} {:>9}",
            pct(t.single_accuracy()),
            pct(t.mix_accuracy()),
            pct(t.healthy_false_rate()),
            secs(t.median_time_s())
        );
    }
    out
}

/// The JSON `faultline diagnose --evaluate --format json` prints.
pub fn json(total: &Score, swarm: Option<&Score>, cases: &[(String, &Score)]) -> serde_json::Value {
    let figures = |t: &Tally| {
        serde_json::json!({
            "single_fault_accuracy": t.single_accuracy(),
            "mix_accuracy": t.mix_accuracy(),
            "healthy_false_verdict_rate": t.healthy_false_rate(),
            "median_time_to_verdict_s": t.median_time_s(),
        })
    };
    let (d, b) = (&total.diagnoser, &total.baseline);
    let mut v = figures(d);
    let obj = v.as_object_mut().expect("an object");
    for (k, x) in figures(b).as_object().expect("an object") {
        obj.insert(format!("baseline_{k}"), x.clone());
    }
    obj.insert("runs".into(), (total.runs + swarm.map_or(0, |s| s.runs)).into());
    obj.insert("confusion".into(), serde_json::json!(d.confusion));
    obj.insert("baseline_confusion".into(), serde_json::json!(b.confusion));
    obj.insert(
        "intervals".into(),
        serde_json::json!({"single": d.single_total, "mix": d.mix_total, "healthy": d.healthy_total}),
    );
    obj.insert("missed".into(), serde_json::json!({"diagnoser": d.missed, "baseline": b.missed}));
    let pr: serde_json::Map<String, serde_json::Value> = d
        .precision_recall()
        .into_iter()
        .map(|(m, (p, r))| (m, serde_json::json!({"precision": p, "recall": r})))
        .collect();
    obj.insert("precision_recall".into(), pr.into());
    let per_case: Vec<serde_json::Value> = cases
        .iter()
        .map(|(name, s)| {
            let mut c = figures(&s.diagnoser);
            c.as_object_mut().expect("an object").insert("case".into(), name.clone().into());
            c
        })
        .collect();
    obj.insert("cases".into(), per_case.into());
    if let Some(sw) = swarm {
        let mut v = figures(&sw.diagnoser);
        let o = v.as_object_mut().expect("an object");
        for (k, x) in figures(&sw.baseline).as_object().expect("an object") {
            o.insert(format!("baseline_{k}"), x.clone());
        }
        o.insert("runs".into(), sw.runs.into());
        o.insert("confusion".into(), serde_json::json!(sw.diagnoser.confusion));
        obj.insert("swarm".into(), v);
    }
    v
}
