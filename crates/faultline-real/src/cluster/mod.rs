//! A real etcd cluster on loopback, under a scenario's faults: Jepsen's etcd test on one
//! machine. [`run`] starts 1 to 5 members (`etcd` from PATH, Debian's `etcd-server`) on
//! free loopback ports in a temporary directory, each member's peer and client traffic
//! through the cluster's proxy routes ([`net`]); runs the register workload ([`client`]),
//! the nemesis ([`nemesis`]) and the monitor ([`monitor`]) together for the scenario's
//! duration; stops everything; and judges the history with [`faultline::linear`] and the
//! signals with [`faultline::diagnose`] ([`report`]).
//!
//! Every member process is killed on every way out: the [`Cleanup`] guard's `Drop` on a
//! normal return, an error or a dropped future (Ctrl-C in the CLI), and the panic hook of
//! [`member::install_panic_hook`] on a panic.
//!
//! What is reproducible: the scenario, the seed and so the draws each client makes (which
//! key, which kind of operation), and the fault schedule. What is not: when each operation
//! runs against real processes, what etcd answers, who leads when a `leader` fault starts.

pub mod client;
pub mod member;
pub mod monitor;
pub mod nemesis;
pub mod net;
pub mod report;
pub mod scenario;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use report::Report;
pub use scenario::{Scenario, ScenarioError};

use client::{ClientSpec, Gateway, Recorder};
use member::{Member, Spec};
use net::Net;

/// Why a cluster could not be run (the CLI exits 2).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot start the cluster: {0}")]
    Start(String),
    #[error("{0}")]
    Output(String),
}

/// How to run a case.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where the history, the logs, the signals and the report go (created if missing).
    pub out_dir: PathBuf,
    /// Keep the members' data directories (in the system's temporary directory).
    pub keep: bool,
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// Where the run's temporary directory goes (default: the system's, `$TMPDIR`).
    pub temp_root: Option<PathBuf>,
}

/// The members and the proxy, as the nemesis and the cleanup reach them.
pub struct Inner {
    pub members: Vec<Member>,
    pub net: Net,
    pub etcd: PathBuf,
}

/// Shared access to [`Inner`]; never held across an await.
#[derive(Clone)]
pub struct Shared(Arc<Mutex<Inner>>);

impl Shared {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Kills the members, closes the proxy and removes the temporary directory (unless kept)
/// when dropped, whichever way the run ends. The tasks it holds (the monitor, the nemesis)
/// are aborted first, so none restarts a member behind its back.
pub struct Cleanup {
    shared: Shared,
    temp: PathBuf,
    keep: bool,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Cleanup {
    /// Stops the members gently (SIGTERM, then SIGKILL after `grace`).
    fn stop(&mut self, grace: Duration) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        let mut inner = self.shared.lock();
        for m in &mut inner.members {
            let _ = m.signal(nix::sys::signal::Signal::SIGCONT);
            let _ = m.pid().map(|p| {
                nix::sys::signal::killpg(nix::unistd::Pid::from_raw(p as i32), nix::sys::signal::Signal::SIGTERM)
            });
        }
        let deadline = Instant::now() + grace;
        for m in &mut inner.members {
            m.stop(deadline.saturating_duration_since(Instant::now()));
        }
        inner.net.shutdown();
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.temp);
        }
        member::unregister_temp(&self.temp);
    }
}

/// The `etcd` binary on PATH.
pub fn find_etcd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("etcd")).find(|p| p.is_file())
}

/// A free loopback port, and the listener holding it: kept until the proxy's routes are
/// bound (which take free ports too, and could otherwise be given this one), then released
/// for etcd to take.
fn free_port(held: &mut Vec<std::net::TcpListener>) -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    held.push(listener);
    Ok(port)
}

/// A token unique to this run: in the temporary directory's name and etcd's cluster token,
/// so a run's processes can be told from any other's.
fn token() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{:x}-{:x}", std::process::id(), nanos & 0xffff_ffff_ffff)
}

/// [`run`] on a runtime of its own, for callers without one (the CLI).
pub fn run_blocking(scenario: &Scenario, case: usize, options: &Options) -> Result<Report, ClusterError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ClusterError::Start(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(run(scenario, case, options))
}

/// Runs case `case` of `scenario` and writes its output directory.
pub async fn run(scenario: &Scenario, case: usize, options: &Options) -> Result<Report, ClusterError> {
    member::install_panic_hook();
    let etcd = find_etcd().ok_or_else(|| {
        ClusterError::Start("etcd is not on PATH (scripts/setup installs Debian's etcd-server)".into())
    })?;
    let out = &options.out_dir;
    let out_err = |e: std::io::Error| ClusterError::Output(format!("{}: {e}", out.display()));
    std::fs::create_dir_all(out.join("members")).map_err(out_err)?;
    let token = token();
    let root = options.temp_root.clone().unwrap_or_else(std::env::temp_dir);
    let temp = root.join(format!("faultline-cluster-{token}"));

    let n = scenario.members;
    let start_err = |e: std::io::Error| ClusterError::Start(format!("loopback ports: {e}"));
    let mut ports = Vec::new();
    let mut upstreams = Vec::new();
    let mut held = Vec::new();
    for m in 0..n {
        let client_port = free_port(&mut held).map_err(start_err)?;
        let peer_port = free_port(&mut held).map_err(start_err)?;
        let metrics_port = free_port(&mut held).map_err(start_err)?;
        let up = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        upstreams.push((format!("m{m}-peer"), up(peer_port)));
        upstreams.push((format!("m{m}-client"), up(client_port)));
        ports.push((client_port, peer_port, metrics_port));
    }
    let (net, addrs) = Net::open(&upstreams).await.map_err(start_err)?;
    drop(held);
    let peer_routes: Vec<SocketAddr> = addrs.iter().step_by(2).copied().collect();
    let client_routes: Vec<SocketAddr> = addrs.iter().skip(1).step_by(2).copied().collect();
    let initial_cluster: Vec<String> = (0..n).map(|m| format!("m{m}=http://{}", peer_routes[m])).collect();
    let members: Vec<Member> = (0..n)
        .map(|m| {
            Member::new(Spec {
                name: format!("m{m}"),
                data_dir: temp.join(format!("m{m}")),
                log: out.join("members").join(format!("m{m}.log")),
                client_port: ports[m].0,
                advertise_client: format!("http://{}", client_routes[m]),
                peer_port: ports[m].1,
                metrics_port: ports[m].2,
                advertise_peer: format!("http://{}", peer_routes[m]),
                initial_cluster: initial_cluster.join(","),
                token: format!("faultline-{token}"),
                heartbeat_ms: scenario.heartbeat_ms,
                election_ms: scenario.election_ms,
            })
        })
        .collect();
    for m in &members {
        // A fresh log per run.
        let _ = std::fs::remove_file(&m.spec.log);
    }
    // From here on the guard removes the directory, whichever way the run ends.
    if !options.keep {
        member::register_temp(&temp);
    }
    let shared = Shared(Arc::new(Mutex::new(Inner { members, net, etcd: etcd.clone() })));
    let mut cleanup = Cleanup { shared: shared.clone(), temp: temp.clone(), keep: options.keep, tasks: Vec::new() };
    std::fs::create_dir_all(&temp).map_err(|e| ClusterError::Start(format!("{}: {e}", temp.display())))?;
    {
        let mut inner = shared.lock();
        for m in &mut inner.members {
            m.start(&etcd).map_err(|e| ClusterError::Start(format!("{}: {e}", etcd.display())))?;
        }
    }
    let timeout = Duration::from_millis(scenario.timeout_ms);
    let gateways: Vec<Gateway> = client_routes.iter().map(|a| Gateway::new(&a.to_string(), timeout)).collect();
    let ids = wait_ready(&shared, &gateways, Duration::from_millis(scenario.start_timeout_ms)).await?;

    // The run itself: clients, nemesis and monitor on one clock.
    let seed = options.seed.unwrap_or(scenario.seed);
    let history = Arc::new(Mutex::new(Recorder::default()));
    let started = Instant::now();
    let until = started + Duration::from_millis(scenario.duration_ms);
    let stop = Arc::new(AtomicBool::new(false));
    let leader = Arc::new(Mutex::new(None));
    let targets: Vec<monitor::Target> = (0..n)
        .map(|m| monitor::Target {
            name: format!("m{m}"),
            client: client_routes[m],
            metrics: SocketAddr::from(([127, 0, 0, 1], ports[m].2)),
            gateway: Gateway::new(&client_routes[m].to_string(), Duration::from_millis(500)),
        })
        .collect();
    let monitor = tokio::spawn(monitor::run(
        targets,
        ids.clone(),
        Duration::from_millis(scenario.probe_interval_ms),
        started,
        stop.clone(),
        leader.clone(),
    ));
    // The first scrape finds the leader before any fault can ask for it.
    tokio::time::sleep(Duration::from_millis(scenario.probe_interval_ms.min(500))).await;
    let nemesis = tokio::spawn(nemesis::run(
        shared.clone(),
        scenario.cases[case].faults.clone(),
        ids.clone(),
        leader.clone(),
        history.clone(),
        started,
        until,
    ));
    let budget = Arc::new(AtomicU64::new(scenario.max_ops));
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..scenario.clients {
        let spec = ClientSpec {
            id: c,
            clients: scenario.clients,
            keys: scenario.keys,
            reads: scenario.reads,
            timeout,
            think: Duration::from_millis(scenario.think_ms),
            seed,
        };
        clients.spawn(client::run_client(spec, gateways.clone(), history.clone(), started, until, budget.clone()));
    }
    cleanup.tasks.push(monitor.abort_handle());
    cleanup.tasks.push(nemesis.abort_handle());
    while clients.join_next().await.is_some() {}
    let nemesis_log = nemesis.await.map_err(|e| ClusterError::Start(format!("the nemesis failed: {e}")))?;
    // A few more probes after the faults healed, then the monitor stops.
    tokio::time::sleep(Duration::from_millis(2 * scenario.probe_interval_ms)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let observed = monitor.await.map_err(|e| ClusterError::Start(format!("the monitor failed: {e}")))?;
    let elapsed_s = started.elapsed().as_secs_f64();
    let proxy_log = shared.lock().net.log();
    cleanup.stop(Duration::from_secs(2));
    drop(cleanup);

    let recorder = std::mem::take(&mut *history.lock().unwrap_or_else(|e| e.into_inner()));
    let write = |name: &str, text: &str| std::fs::write(out.join(name), text).map_err(out_err);
    write("history.edn", &recorder.edn)?;
    write("nemesis.log", &nemesis_log.text)?;
    write("proxy.log", &proxy_log)?;
    let file = std::fs::File::create(out.join("signals.csv")).map_err(out_err)?;
    faultline::signals::write_csv(&observed.samples, std::io::BufWriter::new(file)).map_err(out_err)?;
    let endpoints = (0..n)
        .map(|m| report::Endpoint {
            name: format!("m{m}"),
            id: ids[m].clone(),
            client_port: ports[m].0,
            peer_port: ports[m].1,
            metrics_port: ports[m].2,
            client_route: client_routes[m].to_string(),
            peer_route: peer_routes[m].to_string(),
        })
        .collect();
    let report =
        report::build(scenario, case, seed, out, &recorder, &nemesis_log, &observed, elapsed_s, n, endpoints, &temp)?;
    write("report.json", &(serde_json::to_string_pretty(&report).expect("a report serializes") + "\n"))?;
    write("report.txt", &report.text())?;
    Ok(report)
}

/// Waits until every member answers a linearizable read (so there is a leader and a
/// quorum) and returns the members' ids in hex, in member order.
async fn wait_ready(shared: &Shared, gateways: &[Gateway], within: Duration) -> Result<Vec<String>, ClusterError> {
    let deadline = Instant::now() + within;
    loop {
        {
            let mut inner = shared.lock();
            for m in &mut inner.members {
                if let Some(status) = m.exited() {
                    let tail = member::log_tail(&m.spec.log, 3);
                    return Err(ClusterError::Start(format!(
                        "member {} exited ({status}) while starting; its log ends: {}",
                        m.spec.name,
                        tail.replace('\n', " | ")
                    )));
                }
            }
        }
        let mut ready = true;
        for g in gateways {
            ready &= matches!(g.get("faultline-ready", scenario::Reads::Linearizable).await, client::Answer::Ok(_));
        }
        if ready && let Some(list) = gateways[0].members().await {
            let n = gateways.len();
            let ids: Vec<String> = (0..n)
                .filter_map(|m| list.iter().find(|(name, _)| *name == format!("m{m}")).map(|(_, id)| id.clone()))
                .collect();
            if ids.len() == n {
                return Ok(ids);
            }
        }
        if Instant::now() >= deadline {
            return Err(ClusterError::Start(format!(
                "the members did not all answer within {} ms (their logs are in members/)",
                within.as_millis()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The directory a case's output goes to by default: `<out>/<scenario>/<case>` with the
/// case's name made a file name.
pub fn case_dir(out: &Path, scenario: &Scenario, case: usize) -> PathBuf {
    let slug: String = scenario.cases[case]
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    let slug = slug.split('-').filter(|s| !s.is_empty()).collect::<Vec<_>>().join("-");
    out.join(&scenario.name).join(slug)
}
