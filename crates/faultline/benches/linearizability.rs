//! Benchmark: `faultline check`'s checker (Wing and Gong's search with Lowe's memo, one
//! key at a time, keys in parallel) against the same search without the memo and one key
//! after another (Wing and Gong as published), on histories from
//! `faultline::linear::generate` (linearizable by construction, so both must say so).
//!
//! Run with `cargo bench -p faultline --bench linearizability` (optionally `-- QUICK` for
//! the small cells only). Each cell: 1,000, 10,000 or 100,000 operations; 5, 10 or 50
//! clients; 1, 10 or 100 keys; 0 % or 5 % of clients crashing mid-operation (`:info`).
//! The baseline gets BASELINE_S seconds per cell and is reported as "> BASELINE_S s" when
//! it runs out; the checker gets CHECK_S. Times are the best of a few trials for cells
//! that take under a second, one trial otherwise.

// A benchmark reads the wall clock: that is its job.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use faultline::linear::generate::{Shape, history};
use faultline::linear::parse::{Format, parse};
use faultline::linear::search::{partitions, search_with};
use faultline::linear::{Budget, History, ModelKind, Val, Verdict, check};

const BASELINE_S: f64 = 5.0;
const CHECK_S: f64 = 20.0;

fn timed<T>(trials: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..trials {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed());
        out = Some(r);
    }
    (best, out.expect("at least one trial"))
}

/// The baseline: every key in turn, no memo, the same deadline for all of them.
fn baseline(h: &History, model: ModelKind) -> (Duration, Verdict) {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(BASELINE_S);
    let stop = move || Instant::now() >= deadline;
    let budget = Budget { max_steps: u64::MAX, max_memo_bytes: usize::MAX, stop: &stop };
    let mut worst = Verdict::Linearizable;
    for (_, idx) in partitions(&h.ops) {
        let ops: Vec<_> = idx.iter().map(|&i| h.ops[i].clone()).collect();
        worst = worst.max(search_with(model, &ops, &budget, false).verdict);
        if worst != Verdict::Linearizable {
            break;
        }
    }
    (start.elapsed(), worst)
}

fn main() {
    let quick = std::env::args().any(|a| a == "QUICK");
    let sizes: &[usize] = if quick { &[1_000, 10_000] } else { &[1_000, 10_000, 100_000] };
    let mut cells: Vec<(usize, usize, usize, u32)> = Vec::new();
    for &ops in sizes {
        for clients in [5, 50] {
            for keys in [1, 100] {
                for info in [0, 50] {
                    cells.push((ops, clients, keys, info));
                }
            }
        }
    }
    // The headline cell.
    cells.push((10_000, 10, 10, 0));
    cells.push((10_000, 10, 10, 50));
    println!(
        "| ops | clients | keys | info | parse EDN (ms) | check (ms) | memo states | WG (ms) | speed-up | stale read: check (ms) | WG (ms) | speed-up |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (ops, clients, keys, info_permille) in cells {
        let model = ModelKind::Register;
        let shape = Shape { model, ops, clients, keys, info_permille };
        let h = history(&shape, 1);
        let edn = h.to_edn();
        let (parse_t, parsed) = timed(3, || parse("bench.edn", edn.as_bytes(), Format::Edn, model).expect("parses"));
        assert_eq!(parsed.ops.len(), h.ops.len());
        let (check_t, verdict, memo) = ours(&parsed, model);
        assert_ne!(verdict, Verdict::NotLinearizable, "a generated history is linearizable");
        let (base_t, base_v) = baseline(&parsed, model);
        // The same history with one read, half-way through, returning a value nobody
        // wrote: the search must rule out every order up to it.
        let mut bad = parsed.clone();
        let reads: Vec<usize> = (0..bad.ops.len()).filter(|&i| bad.ops[i].output.is_some()).collect();
        bad.ops[reads[reads.len() / 2]].output = Some(Val::Int(-1));
        let (bad_t, bad_v, _) = ours(&bad, model);
        assert_ne!(bad_v, Verdict::Linearizable);
        let (bad_base_t, bad_base_v) = baseline(&bad, model);
        println!(
            "| {ops} | {clients} | {keys} | {:.0} % | {:.1} | {} | {memo} | {} | {} | {} | {} | {} |",
            info_permille as f64 / 10.0,
            parse_t.as_secs_f64() * 1e3,
            ms(check_t, verdict, CHECK_S),
            ms(base_t, base_v, BASELINE_S),
            ratio(check_t, verdict, base_t, base_v),
            ms(bad_t, bad_v, CHECK_S),
            ms(bad_base_t, bad_base_v, BASELINE_S),
            ratio(bad_t, bad_v, bad_base_t, bad_base_v),
        );
    }
}

/// The checker as `faultline check` runs it: keys in parallel, best of five under a second.
fn ours(h: &History, model: ModelKind) -> (Duration, Verdict, u64) {
    let run = || {
        let deadline = Instant::now() + Duration::from_secs_f64(CHECK_S);
        let stop = move || Instant::now() >= deadline;
        let budget = Budget { max_steps: u64::MAX, max_memo_bytes: 4 << 30, stop: &stop };
        check(h, model, &budget, true)
    };
    let (first, r) = timed(1, run);
    let (t, r) = if first < Duration::from_secs(1) { timed(5, run) } else { (first, r) };
    (t, r.verdict, r.partitions.iter().map(|p| p.memo_states).sum())
}

fn ms(t: Duration, v: Verdict, limit: f64) -> String {
    match v {
        Verdict::Unknown => format!("> {:.0}", limit * 1e3),
        _ => format!("{:.1}", t.as_secs_f64() * 1e3),
    }
}

fn ratio(ours: Duration, ours_v: Verdict, base: Duration, base_v: Verdict) -> String {
    let r = base.as_secs_f64() / ours.as_secs_f64().max(1e-9);
    match (ours_v, base_v) {
        (Verdict::Unknown, _) => "-".to_owned(),
        (_, Verdict::Unknown) => format!("> {r:.0}×"),
        _ => format!("{r:.1}×"),
    }
}
