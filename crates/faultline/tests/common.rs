// Shared by the integration tests of this crate (included with `mod common;`).
#![allow(dead_code)]

use faultline::protocols::quorum::report::run_case;
use faultline::scenario::Scenario;
use faultline::trace::DigestTracer;

/// Every fault kind and every latency distribution in one scenario, over several rounds,
/// so that a determinism or ground-truth test exercises all of the injector.
pub const MIXED: &str = r#"
name = "mixed"
[quorum]
followers = 6
deadline_ms = 40
rounds = 25
data = "x=1"
[network]
latency = { dist = "lognormal", median_ms = 3, sigma = 0.6 }
links = [
  { from = "leader", to = "f0", latency = { dist = "normal", mean_ms = 4, stddev_ms = 3 } },
  { from = "f1", to = "leader", latency = { dist = "pareto", scale_ms = 1, shape = 1.2, cap_ms = 500 } },
  { from = "leader", to = "f2", latency = { dist = "uniform", min_ms = 1, max_ms = 30 } },
]
[limits]
max_time_ms = 100_000
max_events = 1_000_000
inflight_per_link = 4
[[cases]]
name = "everything"
faults = [
  { node = "f0", kind = "pause", at_ms = 50, duration_ms = 120 },
  { node = "f1", kind = "omit", direction = "send", p = 0.3 },
  { node = "f2", kind = "omit", direction = "general", p = 0.2, at_ms = 100, until_ms = 600 },
  { node = "f3", kind = "delay", extra = { dist = "uniform", min_ms = 10, max_ms = 60 } },
  { node = "f4", kind = "tamper", p = 0.5 },
  { node = "f5", kind = "crash", at_ms = 300 },
  { node = "leader", kind = "pause", at_ms = 400, duration_ms = 30 },
]
[[cases]]
name = "quiet"
"#;

pub fn mixed() -> Scenario {
    Scenario::parse("mixed.toml", MIXED, &[]).expect("the mixed scenario is valid")
}

/// Runs one case with a digest tracer that keeps its lines: (digest, lines).
pub fn traced(scenario: &Scenario, case: usize, seed: u64) -> (String, Vec<String>) {
    let digest = DigestTracer::new(true);
    let (_, tracer) = run_case(scenario, case, seed, Some(Box::new(digest.clone())));
    tracer.expect("tracer handed back").finish().expect("digests do not fail");
    (digest.hex_digest(), digest.lines())
}
