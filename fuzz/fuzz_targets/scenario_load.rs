//! Any bytes as a scenario file: `Scenario::from_bytes` returns a scenario or a one-line
//! located error, and never panics. Seed corpus: the shipped scenarios
//! (`cargo fuzz run scenario_load corpus/scenario_load ../scenarios/...`, see docs/fuzzing.md).
#![no_main]

use faultline::scenario::Scenario;
use libfuzzer_sys::fuzz_target;

mod check;

fuzz_target!(|bytes: &[u8]| {
    if let Err(e) = Scenario::from_bytes(check::FILE, bytes, &[]) {
        check::located(bytes, false, &e.to_string());
    }
});
