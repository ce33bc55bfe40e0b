//! Faultline's command line with one more workload: `protocol = "two-phase"`.
//!
//! `cargo run -p custom-workload -- run examples/custom-workload/scenarios/two-phase.toml`

fn main() -> std::process::ExitCode {
    let registry = faultline::registry::builtin().clone().with(&custom_workload::TwoPhase);
    faultline_cli::main(&registry)
}
