//! The catalogue's fault names mapped to the real mechanisms that apply them: one list, read
//! by the proxy (faults on a byte stream) and by the nemesis of `faultline cluster` (faults
//! on processes, through signals), so that both refuse the same names with the same words.
//!
//! A catalogue name has a real mechanism when it keeps its meaning outside the simulator:
//! `delay` on a TCP stream is latency, `pause` on a process is SIGSTOP. Names whose meaning
//! needs the simulator's knowledge of messages or of the protocol (`equivocate` sends
//! different content to different peers, `lie` acks without fsync, `stale` answers from old
//! state, `skew` moves a clock) have none here, and are refused by name.

use faultline::fault::FaultName;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// A fault on a byte stream, as the proxy applies it to one route.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StreamMechanism {
    Delay,
    Partition,
    HalfOpen,
    /// `omit-general`: per chunk, the connection is reset or stalled with a probability.
    Omission,
    /// Not a catalogue name: the proxy's own, a token bucket on the route.
    Bandwidth,
    Flip,
    Tamper,
    Replay,
}

/// A fault on a process, applied through signals by the cluster's nemesis.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ProcessFault {
    /// SIGKILL to the process group.
    Crash,
    /// Crash, then start again on the same data directory (the caller starts it).
    Restart,
    /// SIGSTOP, later SIGCONT.
    Pause,
}

/// Where a fault name has a meaning outside the simulator.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Stream(StreamMechanism),
    Process(ProcessFault),
}

/// The stream faults in the order the messages list them, with the names files use.
pub const STREAM_NAMES: [(&str, StreamMechanism); 8] = [
    ("delay", StreamMechanism::Delay),
    ("partition", StreamMechanism::Partition),
    ("half-open", StreamMechanism::HalfOpen),
    ("omit-general", StreamMechanism::Omission),
    ("bandwidth", StreamMechanism::Bandwidth),
    ("flip", StreamMechanism::Flip),
    ("tamper", StreamMechanism::Tamper),
    ("replay", StreamMechanism::Replay),
];

/// The process faults, with the names files use.
pub const PROCESS_NAMES: [(&str, ProcessFault); 3] =
    [("crash", ProcessFault::Crash), ("restart", ProcessFault::Restart), ("pause", ProcessFault::Pause)];

/// The real mechanism of a catalogue name, if it has one. `bandwidth` is not a catalogue
/// name (the simulator has no bandwidth), so [`mechanism_of`] is the lookup by spelling.
pub fn real_mechanism(name: FaultName) -> Option<Mechanism> {
    use FaultName::*;
    Some(match name {
        Delay => Mechanism::Stream(StreamMechanism::Delay),
        Partition => Mechanism::Stream(StreamMechanism::Partition),
        HalfOpen => Mechanism::Stream(StreamMechanism::HalfOpen),
        OmitGeneral => Mechanism::Stream(StreamMechanism::Omission),
        Flip => Mechanism::Stream(StreamMechanism::Flip),
        Tamper => Mechanism::Stream(StreamMechanism::Tamper),
        Replay => Mechanism::Stream(StreamMechanism::Replay),
        Crash => Mechanism::Process(ProcessFault::Crash),
        Restart => Mechanism::Process(ProcessFault::Restart),
        Pause => Mechanism::Process(ProcessFault::Pause),
        // Per-message faults whose unit (a message) a byte stream does not have, faults that
        // need the protocol's knowledge, and clock and disk faults: no mechanism here.
        FailStop | OmitSend | OmitReceive | OmitEveryNth | OmitLarge | Duplicate | Reorder | Skew | SlowDisk
        | Equivocate | Stale | Lie | Forge | Gray => return None,
    })
}

/// How a name is known: a real mechanism, a catalogue name without one, or no name at all.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    Real(Mechanism),
    NoMechanism(FaultName),
    Unknown,
}

/// Looks a fault name up as files spell it (the catalogue's spellings, plus `bandwidth`).
pub fn mechanism_of(name: &str) -> Lookup {
    if let Some((_, m)) = STREAM_NAMES.iter().find(|(n, _)| *n == name) {
        return Lookup::Real(Mechanism::Stream(*m));
    }
    match FaultName::parse(name) {
        Some(kind) => real_mechanism(kind).map_or(Lookup::NoMechanism(kind), Lookup::Real),
        None => Lookup::Unknown,
    }
}

/// Every name with a real mechanism: the stream faults, then the process faults.
pub fn names_with_mechanism() -> Vec<&'static str> {
    STREAM_NAMES.iter().map(|(n, _)| *n).chain(PROCESS_NAMES.iter().map(|(n, _)| *n)).collect()
}

/// The tail of every refusal: which names do have a mechanism, and where each is applied.
pub fn mechanism_list() -> String {
    let stream: Vec<&str> = STREAM_NAMES.iter().map(|(n, _)| *n).collect();
    let process: Vec<&str> = PROCESS_NAMES.iter().map(|(n, _)| *n).collect();
    format!(
        "these do: {} (on a byte stream, by `faultline proxy`); {} (on processes, by the nemesis of `faultline cluster`)",
        stream.join(", "),
        process.join(", ")
    )
}

/// Why `name` cannot be a fault on a proxy route, or `None` when it can.
pub fn refuse_on_stream(name: &str) -> Option<String> {
    match mechanism_of(name) {
        Lookup::Real(Mechanism::Stream(_)) => None,
        Lookup::Real(Mechanism::Process(_)) => Some(format!(
            "'{name}' acts on processes, not on a byte stream: it is applied by the nemesis of `faultline cluster`; {}",
            mechanism_list()
        )),
        Lookup::NoMechanism(_) => {
            Some(format!("'{name}' has no real mechanism on a byte stream; {}", mechanism_list()))
        }
        Lookup::Unknown => {
            Some(format!("'{}' is not a fault name; {}", faultline::input::elide(name), mechanism_list()))
        }
    }
}

/// Errors of signalling a process.
#[derive(Debug, thiserror::Error)]
#[error("cannot send {signal} to {target} {pid}: {errno}")]
pub struct SignalError {
    pub signal: Signal,
    pub target: &'static str,
    pub pid: i32,
    pub errno: nix::errno::Errno,
}

impl ProcessFault {
    /// SIGKILL to the process group `pgid`: the process and every child it started die at
    /// once, as a machine losing power would leave them (no handler runs, nothing flushes).
    /// A group already gone is not an error: the crash has happened.
    pub fn crash(pgid: i32) -> Result<(), SignalError> {
        match killpg(Pid::from_raw(pgid), Signal::SIGKILL) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(errno) => Err(SignalError { signal: Signal::SIGKILL, target: "process group", pid: pgid, errno }),
        }
    }

    /// SIGSTOP to `pid`: the process stops at once, holding its sockets open, its peers'
    /// connections alive and unanswered, until [`ProcessFault::resume`].
    pub fn pause(pid: i32) -> Result<(), SignalError> {
        kill(Pid::from_raw(pid), Signal::SIGSTOP).map_err(|errno| SignalError {
            signal: Signal::SIGSTOP,
            target: "process",
            pid,
            errno,
        })
    }

    /// SIGCONT to `pid`: a paused process resumes where it stopped, with a stale view.
    pub fn resume(pid: i32) -> Result<(), SignalError> {
        kill(Pid::from_raw(pid), Signal::SIGCONT).map_err(|errno| SignalError {
            signal: Signal::SIGCONT,
            target: "process",
            pid,
            errno,
        })
    }

    /// SIGSTOP to every process of the group `pgid`.
    pub fn pause_group(pgid: i32) -> Result<(), SignalError> {
        killpg(Pid::from_raw(pgid), Signal::SIGSTOP).map_err(|errno| SignalError {
            signal: Signal::SIGSTOP,
            target: "process group",
            pid: pgid,
            errno,
        })
    }

    /// SIGCONT to every process of the group `pgid`.
    pub fn resume_group(pgid: i32) -> Result<(), SignalError> {
        killpg(Pid::from_raw(pgid), Signal::SIGCONT).map_err(|errno| SignalError {
            signal: Signal::SIGCONT,
            target: "process group",
            pid: pgid,
            errno,
        })
    }

    /// The name as files spell it.
    pub fn name(self) -> &'static str {
        match self {
            ProcessFault::Crash => "crash",
            ProcessFault::Restart => "restart",
            ProcessFault::Pause => "pause",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_name_is_classified_and_the_lists_agree() {
        let with: Vec<&str> = names_with_mechanism();
        for kind in FaultName::ALL {
            let has = real_mechanism(kind).is_some();
            assert_eq!(has, with.contains(&kind.name()), "{}", kind.name());
        }
        assert_eq!(mechanism_of("bandwidth"), Lookup::Real(Mechanism::Stream(StreamMechanism::Bandwidth)));
        assert_eq!(mechanism_of("equivocate"), Lookup::NoMechanism(FaultName::Equivocate));
        assert_eq!(mechanism_of("nope"), Lookup::Unknown);
        assert!(refuse_on_stream("delay").is_none());
        assert!(refuse_on_stream("crash").is_some_and(|m| m.contains("faultline cluster")));
        assert!(refuse_on_stream("lie").is_some_and(|m| m.contains("no real mechanism")));
    }

    #[test]
    fn pause_resume_and_crash_act_on_a_real_process() {
        // A child in its own process group, so that the group kill reaches only it.
        use std::os::unix::process::CommandExt;
        let mut child = match std::process::Command::new("sleep").arg("30").process_group(0).spawn() {
            Ok(c) => c,
            Err(_) => return, // no `sleep` on this machine: nothing to signal
        };
        let pid = child.id() as i32;
        ProcessFault::pause(pid).expect("pause");
        ProcessFault::resume(pid).expect("resume");
        ProcessFault::crash(pid).expect("crash");
        let status = child.wait().expect("wait");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9));
        // Crashing what is already gone is not an error.
        ProcessFault::crash(pid).expect("crash again");
    }
}
