//! A `--set` override applied to a scenario. The input's first line is the argument of
//! `--set` (`key=value`), the rest is the scenario file: `Override::parse` refuses the
//! argument with a one-line message, or loading gives a scenario or a one-line error
//! located in the file or at `--set `. Never a panic. Seed corpus: the shipped scenarios,
//! each behind a line such as `quorum.deadline_ms=50` (see docs/fuzzing.md).
#![no_main]

use faultline::scenario::{Override, Scenario};
use libfuzzer_sys::fuzz_target;

mod check;

fuzz_target!(|input: &[u8]| {
    let (arg, file) = match input.iter().position(|&b| b == b'\n') {
        Some(i) => (&input[..i], &input[i + 1..]),
        None => (input, &[][..]),
    };
    let Ok(arg) = std::str::from_utf8(arg) else { return };
    let o = match Override::parse(arg) {
        Ok(o) => o,
        Err(message) => {
            assert!(!message.contains(['\n', '\r']) && !message.trim().is_empty(), "[parse-message] {message:?}");
            return;
        }
    };
    if let Err(e) = Scenario::from_bytes(check::FILE, file, &[o]) {
        check::located(file, true, &e.to_string());
    }
});
