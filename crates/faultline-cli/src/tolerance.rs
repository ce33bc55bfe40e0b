//! `faultline tolerance` (the table of where each protocol stops being safe or live) and
//! `faultline costs` (what Byzantine tolerance costs against Raft). The measurements are
//! the library's ([`faultline::tolerance`]); this module times them, renders them and
//! draws them. CPU time is wall-clock time of single-threaded runs, read here and never in
//! the library.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, anyhow};
use faultline::protocols::pbft::Auth;
use faultline::tolerance::{self, CostRow, Model, Protocol, Row};
use plotters::prelude::*;
use serde::Serialize;

use crate::output;

#[derive(Copy, Clone, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

pub struct Args {
    pub protocols: Vec<Protocol>,
    pub ns: Vec<usize>,
    pub seeds: Range<u64>,
    pub format: Format,
    pub plot: Option<PathBuf>,
    pub threads: Option<usize>,
}

/// The table, rendered; the progress bar ticks once per seed.
pub fn tolerance(args: &Args, progress: &(dyn Fn() + Sync)) -> Result<String> {
    if let Some(plot) = &args.plot {
        output::check_output(plot, &[])?;
    }
    let cells = tolerance::cells(&args.protocols, &Model::ALL, &args.ns);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(args.threads.unwrap_or(0)).build()?;
    let rows = pool.install(|| tolerance::run(&cells, args.seeds.clone(), progress));
    if let Some(plot) = &args.plot {
        let svg = svg(&rows, &args.seeds)?;
        output::write_output(plot, &[], |f| Ok(std::io::Write::write_all(f, svg.as_bytes())?))?;
    }
    Ok(match args.format {
        Format::Json => {
            serde_json::to_string_pretty(
                &serde_json::json!({ "seeds": [args.seeds.start, args.seeds.end], "rows": rows }),
            )? + "\n"
        }
        Format::Csv => csv(&rows)?,
        Format::Table => table(&rows, &args.seeds),
    })
}

/// How many seeds the table runs, for the progress bar.
pub fn jobs(args: &Args) -> u64 {
    tolerance::cells(&args.protocols, &Model::ALL, &args.ns).len() as u64 * (args.seeds.end - args.seeds.start)
}

fn mark(r: &Row) -> &'static str {
    match (r.safe, r.live) {
        (true, true) => "ok",
        (true, false) => "stall",
        (false, true) => "UNSAFE",
        (false, false) => "UNSAFE+stall",
    }
}

/// One block per protocol and model: a line per `n`, a column per `k`.
fn table(rows: &[Row], seeds: &Range<u64>) -> String {
    let mut out = format!(
        "seeds: {}..{} per cell; ok = safe and live, stall = safe but not live, UNSAFE = a safety property failed\n",
        seeds.start, seeds.end
    );
    let max_k = rows.iter().map(|r| r.faulty).max().unwrap_or(0);
    for protocol in Protocol::ALL {
        for model in Model::ALL {
            let block: Vec<&Row> = rows.iter().filter(|r| r.protocol == protocol && r.model == model).collect();
            if block.is_empty() {
                continue;
            }
            let _ = write!(out, "\n{:<28}", format!("{} / {}", protocol.name(), model.name()));
            for k in 0..=max_k {
                let _ = write!(out, "{:<14}", format!("k={k}"));
            }
            out.truncate(out.trim_end().len());
            out.push('\n');
            let mut ns: Vec<usize> = block.iter().map(|r| r.n).collect();
            ns.dedup();
            for n in ns {
                let _ = write!(out, "{:<28}", format!("  n={n}"));
                for k in 0..=max_k {
                    let cell = block.iter().find(|r| r.n == n && r.faulty == k).map_or("", |r| mark(r));
                    let _ = write!(out, "{cell:<14}");
                }
                out.truncate(out.trim_end().len());
                out.push('\n');
            }
        }
    }
    // The chapter's arithmetic, read off the table where it has the cells.
    let find = |p: Protocol, m: Model, n: usize, k: usize| {
        rows.iter().find(|r| r.protocol == p && r.model == m && r.n == n && r.faulty == k)
    };
    let said: Vec<String> = [
        (Protocol::Raft, Model::Crash, 5, 2, "5 nodes for 2 crash failures"),
        (Protocol::Raft, Model::Crash, 4, 2, "4 nodes are not enough"),
        (Protocol::Pbft, Model::Byzantine, 7, 2, "7 for 2 Byzantine"),
        (Protocol::Pbft, Model::Byzantine, 6, 2, "6 are not enough"),
    ]
    .into_iter()
    .filter_map(|(p, m, n, k, what)| {
        find(p, m, n, k).map(|r| format!("{what}: {} / {} n={n} k={k} is {}", p.name(), m.name(), mark(r)))
    })
    .collect();
    if !said.is_empty() {
        out.push_str("\nthe chapter's cells:\n");
        for s in said {
            let _ = writeln!(out, "  {s}");
        }
    }
    out.push_str("\n--format json or csv gives each cell's first violating seed and the command that replays it\n");
    out
}

fn csv(rows: &[Row]) -> Result<String> {
    #[derive(Serialize)]
    struct Flat<'a> {
        protocol: &'static str,
        model: &'static str,
        n: usize,
        faulty: usize,
        safe: bool,
        live: bool,
        seeds: u64,
        unsafe_seeds: u64,
        unlive_seeds: u64,
        first_violating_seed: Option<u64>,
        first_violation: Option<&'a str>,
        reproduce: Option<&'a str>,
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(Flat {
            protocol: r.protocol.name(),
            model: r.model.name(),
            n: r.n,
            faulty: r.faulty,
            safe: r.safe,
            live: r.live,
            seeds: r.seeds,
            unsafe_seeds: r.unsafe_seeds,
            unlive_seeds: r.unlive_seeds,
            first_violating_seed: r.first_violating_seed,
            first_violation: r.first_violation.as_deref(),
            reproduce: r.reproduce.as_deref(),
        })?;
    }
    Ok(String::from_utf8(w.into_inner().map_err(|e| anyhow!("csv: {e}"))?)?)
}

/// A grid per protocol (rows) and model (columns); in each, a square per (n, k): green
/// safe and live, amber safe but stalled, red unsafe.
fn svg(rows: &[Row], seeds: &Range<u64>) -> Result<String> {
    fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
        anyhow!("--plot: {e}")
    }
    let max_n = rows.iter().map(|r| r.n).max().unwrap_or(1);
    let min_n = rows.iter().map(|r| r.n).min().unwrap_or(1);
    let max_k = rows.iter().map(|r| r.faulty).max().unwrap_or(0);
    let sq = 22i32;
    let (gw, gh) = ((max_k as i32 + 1) * sq + 60, (max_n - min_n + 1) as i32 * sq + 50);
    let (width, height) = (20 + 4 * gw, 90 + 4 * gh);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width as u32, height as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let title = format!(
            "Tolerance over seeds {}..{}: green safe and live, amber safe but not live, red unsafe (rows n, columns k faulty)",
            seeds.start, seeds.end
        );
        root.draw(&Text::new(title, (10, 10), ("sans-serif", 15))).map_err(err)?;
        for (pi, p) in Protocol::ALL.iter().enumerate() {
            for (mi, m) in Model::ALL.iter().enumerate() {
                let (x0, y0) = (10 + mi as i32 * gw, 40 + pi as i32 * gh);
                root.draw(&Text::new(format!("{} / {}", p.name(), m.name()), (x0, y0), ("sans-serif", 13)))
                    .map_err(err)?;
                for r in rows.iter().filter(|r| r.protocol == *p && r.model == *m) {
                    let x = x0 + 40 + r.faulty as i32 * sq;
                    let y = y0 + 20 + (r.n - min_n) as i32 * sq;
                    let colour = match (r.safe, r.live) {
                        (true, true) => RGBColor(44, 160, 44),
                        (true, false) => RGBColor(240, 170, 40),
                        _ => RGBColor(214, 39, 40),
                    };
                    root.draw(&Rectangle::new([(x, y), (x + sq - 2, y + sq - 2)], colour.filled())).map_err(err)?;
                    if r.faulty == 0 {
                        root.draw(&Text::new(format!("n={}", r.n), (x0, y + 4), ("sans-serif", 11))).map_err(err)?;
                    }
                }
            }
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// `faultline costs`: both protocols at each `n`, with CPU time per request (the best of
/// nine single-threaded runs, since other work on the machine only adds).
#[derive(Serialize)]
struct CostOut {
    #[serde(flatten)]
    row: CostRow,
    cpu_us_per_request: f64,
}

pub fn costs(ns: &[usize], auth: Auth, json: bool) -> Result<String> {
    const REPEATS: usize = 9;
    let mut out = Vec::new();
    for &n in ns {
        for protocol in [Protocol::Raft, Protocol::Pbft] {
            let mut best = f64::INFINITY;
            let mut row = None;
            for _ in 0..REPEATS {
                let started = Instant::now();
                let r = tolerance::costs(protocol, n, auth);
                best = best.min(started.elapsed().as_secs_f64());
                row = Some(r);
            }
            let row = row.expect("at least one repeat");
            let cpu_us_per_request = best * 1e6 / row.requests.max(1) as f64;
            out.push(CostOut { row, cpu_us_per_request });
        }
    }
    if json {
        return Ok(serde_json::to_string_pretty(&serde_json::json!({ "rows": out }))? + "\n");
    }
    let mut s = format!(
        "one client, {} requests one at a time (half reads, half writes, both ordered), no faults; PBFT signs with {}\n\n",
        tolerance::COST_REQUESTS,
        match auth {
            Auth::Hmac => "HMAC-SHA256",
            Auth::Ed25519 => "Ed25519",
        }
    );
    let _ = writeln!(
        s,
        "{:<6} {:>3} {:>9} {:>13} {:>9} {:>10} {:>9} {:>9}",
        "", "n", "requests", "replica msgs", "closed", "all msgs", "bytes", "auth ops"
    );
    for o in &out {
        let r = &o.row;
        let _ = writeln!(
            s,
            "{:<6} {:>3} {:>9} {:>13.1} {:>9} {:>10.1} {:>9.0} {:>9.1}   cpu {:.1} us",
            r.protocol.name(),
            r.n,
            r.requests,
            r.replica_messages_per_request,
            r.closed_form_replica_messages,
            r.messages_per_request,
            r.bytes_per_request,
            r.auth_ops_per_request,
            o.cpu_us_per_request
        );
    }
    s.push_str("\nPBFT against Raft, per request:\n");
    for pair in out.chunks(2) {
        if let [raft, pbft] = pair {
            let ratio = |a: f64, b: f64| if b > 0.0 { format!("{:.1}x", a / b) } else { "-".to_owned() };
            let _ = writeln!(
                s,
                "  n={}: replica messages {}, all messages {}, bytes {}, cpu {}",
                raft.row.n,
                ratio(pbft.row.replica_messages_per_request, raft.row.replica_messages_per_request),
                ratio(pbft.row.messages_per_request, raft.row.messages_per_request),
                ratio(pbft.row.bytes_per_request, raft.row.bytes_per_request),
                ratio(pbft.cpu_us_per_request, raft.cpu_us_per_request)
            );
        }
    }
    Ok(s)
}
