//! What monitoring sees of each member during a run, written as docs/signals.md's samples,
//! every `probe_interval_ms`, by two paths, as in the gray-failure literature's setting
//! (a load balancer's shallow health check beside the clients' real requests):
//!
//! - the **data path**, the member's client route (where clients reach it, through the
//!   proxy): `transport` and `data_ok`, `data_latency_ms`, `content_digest`;
//! - the **health path**, the member's metrics listener (`--listen-metrics-urls`, its own
//!   port, reached directly as Prometheus or a load balancer's checker reaches a host):
//!   `health_ok`, `health_latency_ms`, and the scrape behind `heartbeat_age_s`.
//!
//! So the signals tell apart what the docs define apart: a half-open member (its data path
//! accepts connections and answers nothing, its health check passes: `transport =
//! half-open`, `health_ok = 1`, `data_ok = 0`) from a paused one (frozen whole: the health
//! check times out too) and a crashed one (the data path is reset, the health check
//! refused).
//!
//! - `transport`: a raw TCP probe through the data path sends `GET /version` and reads the
//!   first bytes: an answer is `open`, a connection closed or reset without one `closed`,
//!   a refused or timed-out connect `refused`, a connection accepted and then silent
//!   `half-open`.
//! - `health_ok`, `health_latency_ms`: `GET /metrics` on the metrics listener answered 200
//!   within the probe's timeout, and how long the status line took. A shallow check: the
//!   process serves it without a quorum (etcd's `/health` asks for one, so an isolated but
//!   live member would fail it).
//! - `data_ok`, `data_latency_ms`, `content_digest`: a serializable range of a probe key
//!   through the data path (the member's own data, no quorum), and a digest of the value.
//!   The monitor writes the probe key about once a second, so a member cut off from the
//!   others serves an old digest.
//! - `heartbeat_age_s`: seconds since any other member last heard this one, read from the
//!   others' `etcd_network_peer_received_bytes_total{From="<id>"}` in the same `/metrics`
//!   scrape: a follower's heartbeat answers and a leader's heartbeats both move it, about
//!   every heartbeat interval.
//!
//! The same scrape gives the leader as each member sees it (`/v3/maintenance/status`),
//! from which the run counts leader changes and the nemesis finds the leader.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline::signals::{Sample, Signal, Transport, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::client::{Answer, Gateway};
use super::scenario::Reads;

/// The key the monitor writes and reads on every member.
pub const PROBE_KEY: &str = "faultline-probe";

/// One member as the monitor reaches it.
#[derive(Clone)]
pub struct Target {
    pub name: String,
    /// The data path: the member's client route.
    pub client: SocketAddr,
    /// The health path: the member's metrics listener, not behind the proxy.
    pub metrics: SocketAddr,
    pub gateway: Gateway,
}

/// What the monitor saw during a run.
#[derive(Default)]
pub struct Observed {
    pub samples: Vec<Sample>,
    /// (time, leader's member index, term) each time the highest-term leader changed.
    pub leaders: Vec<(f64, Option<usize>, u64)>,
}

/// A probe's outcome for one member at one tick.
struct Probe {
    transport: Transport,
    health: Option<f64>,
    data: Option<(f64, String)>,
    received: BTreeMap<String, f64>,
    status: Option<(String, u64)>,
}

/// FNV-1a, 64 bits: a stable digest to compare served values (not a security property).
fn digest(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The raw TCP probe of the data path: the transport state.
async fn transport_probe(addr: SocketAddr, timeout: Duration) -> Transport {
    let mut stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        _ => return Transport::Refused,
    };
    let request = b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request).await.is_err() {
        return Transport::Closed;
    }
    let mut buf = [0u8; 64];
    match tokio::time::timeout(timeout, stream.read(&mut buf)).await {
        Ok(Ok(1..)) => Transport::Open,
        Ok(_) => Transport::Closed,
        Err(_) => Transport::HalfOpen,
    }
}

/// The health path: `GET /metrics` on the metrics listener. Returns the latency of a 200
/// status line (none: refused, silent, or another status) and the peer counters read from
/// the body (empty when the body did not come in time).
async fn health_probe(addr: SocketAddr, timeout: Duration) -> (Option<f64>, BTreeMap<String, f64>) {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let Ok(Ok(mut stream)) = tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await else {
        return (None, BTreeMap::new());
    };
    // HTTP/1.0: the answer is the body up to the close, never chunked.
    if stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").await.is_err() {
        return (None, BTreeMap::new());
    }
    let mut body = Vec::new();
    let mut latency = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n @ 1..)) => {
                body.extend_from_slice(&buf[..n]);
                if latency.is_none() && body.len() >= 12 {
                    if !(body.starts_with(b"HTTP/1.") && &body[9..12] == b"200") {
                        return (None, BTreeMap::new());
                    }
                    latency = Some(started.elapsed().as_secs_f64() * 1e3);
                }
            }
            Ok(_) => break,
            // The status came and the body did not finish in time: healthy, not scraped.
            Err(_) => return (latency, BTreeMap::new()),
        }
    }
    (latency, received_bytes(&String::from_utf8_lossy(&body)))
}

/// `etcd_network_peer_received_bytes_total{From="<id>"}` per sender id.
fn received_bytes(metrics: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("etcd_network_peer_received_bytes_total{") else { continue };
        let Some((labels, value)) = rest.split_once("} ") else { continue };
        let from = labels.split(',').find_map(|l| l.strip_prefix("From=\"")).map(|v| v.trim_end_matches('"'));
        if let (Some(from), Ok(v)) = (from, value.trim().parse::<f64>()) {
            out.insert(from.to_owned(), v);
        }
    }
    out
}

async fn probe(t: Target, timeout: Duration) -> Probe {
    // All four at once: a paused member makes each wait its whole timeout.
    let data = async {
        let started = Instant::now();
        match tokio::time::timeout(timeout, t.gateway.get(PROBE_KEY, Reads::Serializable)).await {
            Ok(Answer::Ok(v)) => Some((started.elapsed().as_secs_f64() * 1e3, digest(v.as_deref().unwrap_or("")))),
            _ => None,
        }
    };
    let status = async {
        match tokio::time::timeout(timeout, t.gateway.status()).await {
            Ok(Some((_, leader, term))) => Some((leader, term)),
            _ => None,
        }
    };
    let (transport, (health, received), data, status) =
        tokio::join!(transport_probe(t.client, timeout), health_probe(t.metrics, timeout), data, status);
    Probe { transport, health, data, received, status }
}

/// Probes every member every `interval` until `stop` is set; `ids` are the members' ids in
/// hex, in member order. `leader` is kept up to date for the nemesis.
pub async fn run(
    targets: Vec<Target>,
    ids: Vec<String>,
    interval: Duration,
    started: Instant,
    stop: Arc<std::sync::atomic::AtomicBool>,
    leader: Arc<Mutex<Option<usize>>>,
) -> Observed {
    use std::sync::atomic::Ordering;
    let mut observed = Observed::default();
    let n = targets.len();
    // Per receiver, per sender id: the counter last read.
    let mut last_counts: Vec<BTreeMap<String, f64>> = vec![BTreeMap::new(); n];
    let mut last_heard: Vec<Option<f64>> = vec![None; n];
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let timeout = interval.mul_f64(1.5).clamp(Duration::from_millis(150), Duration::from_millis(500));
    let mut tick: u64 = 0;
    let mut writer: Option<tokio::task::JoinHandle<()>> = None;
    while !stop.load(Ordering::SeqCst) {
        ticker.tick().await;
        tick += 1;
        // About once a second, a new value of the probe key, through whichever member
        // answers (the previous write must have finished: one at a time).
        if tick % (1000 / interval.as_millis().max(1) as u64).max(1) == 1
            && writer.as_ref().is_none_or(|w| w.is_finished())
        {
            let gateways: Vec<Gateway> = targets.iter().map(|t| t.gateway.clone()).collect();
            writer = Some(tokio::spawn(async move {
                for g in gateways.iter().cycle().skip(tick as usize % gateways.len()).take(gateways.len()) {
                    if let Ok(Answer::Ok(())) = tokio::time::timeout(timeout, g.put(PROBE_KEY, &tick.to_string())).await
                    {
                        break;
                    }
                }
            }));
        }
        let mut set = tokio::task::JoinSet::new();
        for (i, t) in targets.iter().enumerate() {
            let t = t.clone();
            set.spawn(async move { (i, probe(t, timeout).await) });
        }
        let mut probes: Vec<Option<Probe>> = (0..n).map(|_| None).collect();
        while let Some(Ok((i, p))) = set.join_next().await {
            probes[i] = Some(p);
        }
        // The round's samples are stamped when its answers are in: a probe that waited out a
        // pause is known only then (and the nemesis may have ended the fault meanwhile).
        let now = started.elapsed().as_secs_f64();
        let mut push = |replica: usize, signal: Signal, value: Value| {
            observed.samples.push(Sample { time_s: now, replica: targets[replica].name.clone(), signal, value });
        };
        // Who heard whom: a counter that moved (or restarted) since the last scrape.
        for (r, p) in probes.iter().enumerate() {
            let Some(p) = p else { continue };
            for (from, &count) in &p.received {
                let moved = last_counts[r].get(from).is_none_or(|&before| count != before);
                last_counts[r].insert(from.clone(), count);
                if let Some(sender) = ids.iter().position(|id| id == from)
                    && sender != r
                    && moved
                    && count > 0.0
                {
                    last_heard[sender] = Some(now);
                }
            }
        }
        for (i, p) in probes.iter().enumerate() {
            let Some(p) = p else { continue };
            push(i, Signal::Transport, Value::Transport(p.transport));
            push(i, Signal::HealthOk, Value::Number(p.health.is_some() as u8 as f64));
            if let Some(ms) = p.health {
                push(i, Signal::HealthLatency, Value::Number(ms));
            }
            push(i, Signal::DataOk, Value::Number(p.data.is_some() as u8 as f64));
            if let Some((ms, d)) = &p.data {
                push(i, Signal::DataLatency, Value::Number(*ms));
                push(i, Signal::ContentDigest, Value::Digest(d.clone()));
            }
            if let Some(h) = last_heard[i] {
                push(i, Signal::HeartbeatAge, Value::Number((now - h).max(0.0)));
            }
        }
        // The leader: the one named by the highest term any member reports.
        let best = probes
            .iter()
            .flatten()
            .filter_map(|p| p.status.as_ref())
            .filter(|(leader, _)| leader != "0")
            .max_by_key(|(_, term)| *term)
            .map(|(leader, term)| (ids.iter().position(|id| id == leader), *term));
        if let Some((who, term)) = best {
            *leader.lock().unwrap_or_else(|e| e.into_inner()) = who;
            if observed.leaders.last().is_none_or(|&(_, l, t)| l != who || t != term) {
                observed.leaders.push((now, who, term));
            }
        }
    }
    if let Some(w) = writer {
        w.abort();
    }
    observed
}
