//! `faultline cluster`: a real etcd cluster under a scenario's faults (docs/real.md). The
//! work is `faultline_real::cluster`'s; this prints the reports and maps them to exit
//! codes: 0 every case's history linearizable, 1 one is not, 3 the checker ran out of
//! budget on one (and none is proven not linearizable), 2 the cluster could not be run.

use std::path::PathBuf;

use anyhow::{Result, bail};
use faultline_real::cluster::{self, Options, Scenario};

use crate::{Format, Outcome, output};

pub const EXIT_CODES: &str = "Exit codes: 0 every history linearizable; 1 a history not linearizable; \
2 bad input, or the cluster could not be run (etcd missing, no ports, members that would not start); \
3 unknown (the checker's budget ran out first). SIGINT, SIGTERM and SIGHUP kill the members and \
remove their directories before the process ends (128 + the signal).";

pub struct Args {
    pub scenario: PathBuf,
    pub case: Option<String>,
    pub format: Format,
    pub out: PathBuf,
    pub keep: bool,
    pub seed: Option<u64>,
}

pub fn run(args: Args, out: &mut String) -> Result<Outcome> {
    let scenario = Scenario::load(&args.scenario)?;
    let cases: Vec<usize> = match &args.case {
        None => (0..scenario.cases.len()).collect(),
        Some(name) => match scenario.case(name) {
            Some(c) => vec![c],
            None => {
                let names: Vec<&str> = scenario.cases.iter().map(|c| c.name.as_str()).collect();
                bail!("{}: no case named {name:?} (it has: {})", args.scenario.display(), names.join("; "))
            }
        },
    };
    // The signal thread kills the members before the process ends.
    output::on_signal(cluster::member::interrupted);
    let mut reports = Vec::new();
    for c in cases {
        let options = Options {
            out_dir: cluster::case_dir(&args.out, &scenario, c),
            keep: args.keep,
            seed: args.seed,
            temp_root: None,
        };
        output::eprint_line(&format!(
            "{} / {}: {} members, {} s ...",
            scenario.name,
            scenario.cases[c].name,
            scenario.members,
            scenario.duration_ms as f64 / 1000.0
        ));
        let report = cluster::run_blocking(&scenario, c, &options)?;
        if args.format == Format::Table {
            out.push_str(&report.text());
            if report.linearizable == Some(false) {
                // The seed fixes the clients' draws and the schedule, not the timing of real
                // processes: a rerun gives another history, most likely with the same verdict.
                out.push_str(&format!(
                    "reproduce (the same draws and faults, not the same timing): {} cluster {} --case {:?} --seed {}\n",
                    std::env::args().next().unwrap_or_else(|| "faultline".into()),
                    args.scenario.display(),
                    report.case,
                    report.seed
                ));
            }
            out.push('\n');
        }
        reports.push(report);
    }
    if args.format == Format::Json {
        let json = match reports.as_slice() {
            [one] => serde_json::to_string_pretty(one)?,
            all => serde_json::to_string_pretty(all)?,
        };
        out.push_str(&json);
        out.push('\n');
    }
    let outcome = if reports.iter().any(|r| r.linearizable == Some(false)) {
        Outcome::Violated
    } else if reports.iter().any(|r| r.linearizable.is_none()) {
        Outcome::Stalled
    } else {
        Outcome::Ok
    };
    Ok(outcome)
}
