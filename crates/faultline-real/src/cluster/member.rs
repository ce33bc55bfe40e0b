//! etcd members as child processes: started in their own process groups, killed on every
//! way out. Jepsen's etcd test starts its members the same way (one per node, a fresh data
//! directory each); here the nodes are loopback ports on one machine.
//!
//! Every live member's process group is in a process-wide registry ([`LIVE`]). Three paths
//! empty it: [`Member::stop`] (normal ends and errors, through the run's `Cleanup` guard),
//! a panic hook installed by [`install_panic_hook`] (the release profile aborts on panic,
//! so no destructor would run), and [`interrupted`], which the CLI's signal thread calls
//! on SIGINT, SIGTERM and SIGHUP. Behind them, each member is started with the parent-death
//! signal set to SIGKILL (`PR_SET_PDEATHSIG`), so the kernel kills it if Faultline dies by
//! any other way (SIGKILL included).

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Process groups of the members alive now (each member leads its own group).
static LIVE: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

fn live() -> std::sync::MutexGuard<'static, BTreeSet<i32>> {
    // A panic while the lock was held must not keep the others from killing members.
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Temporary directories of runs in progress (not `--keep`): removed by [`interrupted`].
static TEMP_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

pub fn register_temp(dir: &Path) {
    TEMP_DIRS.lock().unwrap_or_else(|e| e.into_inner()).push(dir.to_owned());
}

pub fn unregister_temp(dir: &Path) {
    TEMP_DIRS.lock().unwrap_or_else(|e| e.into_inner()).retain(|d| d != dir);
}

/// For a signal that is about to end the process: kills every member, waits (at most 2 s)
/// until they are gone, then removes the runs' temporary directories. Called from a
/// signal-handling thread, never from a signal handler.
pub fn interrupted() {
    let groups: Vec<i32> = live().iter().copied().collect();
    kill_all();
    let deadline = Instant::now() + Duration::from_secs(2);
    for g in groups {
        // Reap it if it is our child; otherwise wait for it to be gone.
        while Instant::now() < deadline {
            match nix::sys::wait::waitpid(Pid::from_raw(g), Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                Ok(nix::sys::wait::WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(10)),
                _ => break,
            }
        }
    }
    let dirs = std::mem::take(&mut *TEMP_DIRS.lock().unwrap_or_else(|e| e.into_inner()));
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// SIGKILLs every live member's process group (Ctrl-C, a panic). Safe to call twice.
pub fn kill_all() {
    let groups: Vec<i32> = live().iter().copied().collect();
    for g in groups {
        let _ = killpg(Pid::from_raw(g), Signal::SIGCONT);
        let _ = killpg(Pid::from_raw(g), Signal::SIGKILL);
    }
}

/// Makes a panic anywhere kill the members and remove the runs' temporary directories
/// before the process ends (once per process). Under `panic = "abort"` (the release build)
/// nothing else would: no destructor runs.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            interrupted();
            previous(info);
        }));
    });
}

/// How one member is started: its name, ports and flags.
#[derive(Clone, Debug)]
pub struct Spec {
    pub name: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    /// The port it listens on for clients.
    pub client_port: u16,
    /// The address clients are told to use (its client route).
    pub advertise_client: String,
    pub peer_port: u16,
    /// The port of its metrics listener (`/metrics`, `/health`): reached directly, never
    /// through the proxy, as a load balancer's or Prometheus' own path to the host would.
    pub metrics_port: u16,
    /// The address peers are told to use (its peer route, through the proxy).
    pub advertise_peer: String,
    /// `m0=http://...,m1=...`: every member's advertised peer address.
    pub initial_cluster: String,
    pub token: String,
    pub heartbeat_ms: u64,
    pub election_ms: u64,
}

/// One etcd member and its process, when it runs.
pub struct Member {
    pub spec: Spec,
    child: Option<Child>,
    /// Whether its data directory holds a member already (a restart joins as "existing").
    started_once: bool,
    pub paused: bool,
}

impl Member {
    pub fn new(spec: Spec) -> Member {
        Member { spec, child: None, started_once: false, paused: false }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the process, logging to the member's log file (appended: a restart's log
    /// follows the first run's).
    pub fn start(&mut self, etcd: &Path) -> std::io::Result<()> {
        let s = &self.spec;
        let log = File::options().create(true).append(true).open(&s.log)?;
        let state = if self.started_once { "existing" } else { "new" };
        let mut cmd = Command::new(etcd);
        cmd.arg("--name")
            .arg(&s.name)
            .arg("--data-dir")
            .arg(&s.data_dir)
            .arg("--listen-client-urls")
            .arg(format!("http://127.0.0.1:{}", s.client_port))
            .arg("--advertise-client-urls")
            .arg(&s.advertise_client)
            .arg("--listen-peer-urls")
            .arg(format!("http://127.0.0.1:{}", s.peer_port))
            .arg("--listen-metrics-urls")
            .arg(format!("http://127.0.0.1:{}", s.metrics_port))
            .arg("--initial-advertise-peer-urls")
            .arg(&s.advertise_peer)
            .arg("--initial-cluster")
            .arg(&s.initial_cluster)
            .arg("--initial-cluster-state")
            .arg(state)
            .arg("--initial-cluster-token")
            .arg(&s.token)
            .arg("--heartbeat-interval")
            .arg(s.heartbeat_ms.to_string())
            .arg("--election-timeout")
            .arg(s.election_ms.to_string())
            // Small snapshots would make followers behind a partition catch up by snapshot,
            // which is slower and is not what the faults are about.
            .arg("--snapshot-count")
            .arg("100000")
            .arg("--logger")
            .arg("zap")
            .arg("--log-outputs")
            .arg("stderr")
            .env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: a Ctrl-C at the terminal reaches Faultline alone, which
            // then kills the members itself, and a signal to the group reaches every thread.
            .process_group(0);
        // SAFETY: the closure runs in the child between fork and exec and only makes
        // async-signal-safe system calls (prctl, getppid).
        let parent = std::process::id() as i32;
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
                // The parent may have died before the prctl: then nothing would ever fire.
                if nix::unistd::getppid().as_raw() != parent {
                    return Err(std::io::Error::other("the parent died while the member started"));
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        live().insert(child.id() as i32);
        self.child = Some(child);
        self.started_once = true;
        self.paused = false;
        Ok(())
    }

    /// Sends `signal` to the member's process group.
    pub fn signal(&mut self, signal: Signal) -> nix::Result<()> {
        let Some(child) = &self.child else { return Ok(()) };
        killpg(Pid::from_raw(child.id() as i32), signal)?;
        match signal {
            Signal::SIGSTOP => self.paused = true,
            Signal::SIGCONT => self.paused = false,
            _ => {}
        }
        Ok(())
    }

    /// SIGKILL and reap: the process is gone when this returns.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = child.id() as i32;
            let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
            let _ = child.wait();
            live().remove(&group);
        }
        self.paused = false;
    }

    /// SIGTERM, up to `grace` for it to exit, then SIGKILL; reaped either way.
    pub fn stop(&mut self, grace: Duration) {
        if let Some(child) = &mut self.child {
            let group = Pid::from_raw(child.id() as i32);
            let _ = killpg(group, Signal::SIGCONT);
            let _ = killpg(group, Signal::SIGTERM);
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill();
    }

    /// Whether the process exited on its own (it failed to start, say), with its status.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        if let Some(child) = self.child.take() {
            live().remove(&(child.id() as i32));
        }
        Some(status)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `lines` lines of a log file, to say why a member would not start.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
