//! The memory budget. A run that is valid but too large for the machine (a Raft cluster of
//! 99 servers and 1,000 clients keeps every observation for its checkers) would otherwise
//! grow until an allocation fails and the process aborts. A watcher thread reads the
//! process's resident memory ten times a second and, past the budget, removes pending
//! temporary files and ends the command with exit code 2 and a message saying what to do.
//!
//! The watcher reads nothing of the simulation and changes no result: a run either
//! finishes with the same output it would have had, or stops with this error.

use std::time::Duration;

use crate::output;

/// The budget when `--memory-mb` is not given: half the machine's memory, at most this.
pub const DEFAULT_MAX_MB: u64 = 8192;
/// The largest budget `--memory-mb` accepts (1 TiB).
pub const MAX_MB: u64 = 1 << 20;

/// Half the machine's memory, at most [`DEFAULT_MAX_MB`].
pub fn default_mb() -> u64 {
    let total_kb = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| field_kb(&m, "MemTotal:"));
    total_kb.map_or(DEFAULT_MAX_MB, |kb| (kb / 1024 / 2).clamp(64, DEFAULT_MAX_MB))
}

/// Starts the watcher for a budget of `budget_mb` MiB.
pub fn watch(budget_mb: u64, flag_given: bool) {
    let spawned = std::thread::Builder::new().name("memory-budget".into()).spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let Some(resident_mb) = resident_kb().map(|kb| kb / 1024) else { return };
            if resident_mb > budget_mb {
                output::remove_pending();
                let whose = if flag_given { "" } else { ", the default: half this machine's memory, at most 8192" };
                output::eprint_line(&format!(
                    "error: stopped at the memory budget: {resident_mb} MiB resident, over --memory-mb {budget_mb}{whose}; \
                     this run is too large for it: make it smaller (fewer nodes, servers or clients, a shorter \
                     duration_ms, a lower limits.max_events, fewer --threads) or raise --memory-mb"
                ));
                std::process::exit(2);
            }
        }
    });
    // Without a watcher the command still runs, as it did before there was a budget.
    drop(spawned);
}

/// The process's resident memory in KiB (Linux's /proc; `None` elsewhere).
fn resident_kb() -> Option<u64> {
    field_kb(&std::fs::read_to_string("/proc/self/status").ok()?, "VmRSS:")
}

/// The value of a `Name:   1234 kB` line.
fn field_kb(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kb_fields() {
        assert_eq!(field_kb("Name:\tx\nVmRSS:\t  123456 kB\n", "VmRSS:"), Some(123_456));
        assert_eq!(field_kb("MemTotal:       24000000 kB", "MemTotal:"), Some(24_000_000));
        assert_eq!(field_kb("VmPeak: 1 kB", "VmRSS:"), None);
    }

    #[test]
    fn this_process_has_a_resident_size() {
        assert!(resident_kb().is_some_and(|kb| kb > 0));
        assert!((64..=DEFAULT_MAX_MB).contains(&default_mb()));
    }
}
