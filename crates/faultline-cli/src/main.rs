//! The `faultline` command: the command line of [`faultline_cli`] over the built-in
//! workloads.

fn main() -> std::process::ExitCode {
    faultline_cli::main(faultline::registry::builtin())
}
