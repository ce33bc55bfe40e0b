//! The register workload, as Jepsen's etcd test runs it: a handful of concurrent clients,
//! each doing read, write and compare-and-set on a few keys, through etcd's v3 API (its
//! gRPC gateway: HTTP/JSON, keys and values in base64). Every invocation and completion
//! goes into one history in real-time order, as Jepsen's EDN.
//!
//! Outcomes follow Jepsen's rules: a request that was never sent (the connection refused)
//! is `:fail`; a read that did not answer is `:fail` too (it changed nothing); a write or
//! compare-and-set that timed out or errored after it was sent is `:info` (it may have
//! happened), and that client continues as a new process, since a Jepsen process has one
//! operation in flight and an `:info` one never completes.
//!
//! The draws each client makes (key; read, write or compare-and-set) are a function of the
//! seed; when each operation runs, and what etcd answers, are not (real processes, real
//! time), and a compare-and-set becomes a write while its client knows no value of the key.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::scenario::Reads;

/// A small, stable PRNG (SplitMix64): the workload's choices must not change with a
/// dependency's version.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// What a request to etcd came to.
#[derive(Debug)]
pub enum Answer<T> {
    Ok(T),
    /// Certainly not done: nothing was sent, or etcd said so.
    Fail(String),
    /// Perhaps done: sent, then a timeout or an error.
    Unknown(String),
}

/// An etcd member's v3 gateway at one address.
#[derive(Clone)]
pub struct Gateway {
    http: reqwest::Client,
    base: String,
}

fn b64(s: &str) -> String {
    B64.encode(s.as_bytes())
}

impl Gateway {
    pub fn new(addr: &str, timeout: Duration) -> Gateway {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_millis(500)))
            .pool_max_idle_per_host(2)
            .build()
            .expect("a plain HTTP client builds");
        Gateway { http, base: format!("http://{addr}") }
    }

    async fn post(&self, path: &str, body: Value) -> Answer<Value> {
        let sent = self.http.post(format!("{}{path}", self.base)).json(&body).send().await;
        let response = match sent {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Answer::Fail(format!("connect: {e}")),
            Err(e) if e.is_timeout() => return Answer::Unknown("timeout".into()),
            Err(e) => return Answer::Unknown(e.to_string()),
        };
        let status = response.status();
        let body: Value = match response.json().await {
            Ok(v) => v,
            Err(e) if e.is_timeout() => return Answer::Unknown("timeout".into()),
            Err(e) => return Answer::Unknown(format!("reading the answer: {e}")),
        };
        if status.is_success() && body.get("error").is_none() {
            Answer::Ok(body)
        } else {
            let message = body.get("error").or(body.get("message")).and_then(Value::as_str).unwrap_or("error");
            Answer::Unknown(format!("{status}: {message}"))
        }
    }

    /// The value of `key` (None: absent).
    pub async fn get(&self, key: &str, reads: Reads) -> Answer<Option<String>> {
        let body = json!({ "key": b64(key), "serializable": reads == Reads::Serializable });
        match self.post("/v3/kv/range", body).await {
            Answer::Ok(v) => {
                let value = v["kvs"]
                    .get(0)
                    .and_then(|kv| kv["value"].as_str())
                    .map(|s| B64.decode(s).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default());
                Answer::Ok(value)
            }
            // A read changed nothing: whatever befell it, it did not happen.
            Answer::Fail(e) | Answer::Unknown(e) => Answer::Fail(e),
        }
    }

    pub async fn put(&self, key: &str, value: &str) -> Answer<()> {
        match self.post("/v3/kv/put", json!({ "key": b64(key), "value": b64(value) })).await {
            Answer::Ok(_) => Answer::Ok(()),
            Answer::Fail(e) => Answer::Fail(e),
            Answer::Unknown(e) => Answer::Unknown(e),
        }
    }

    /// Sets `key` to `new` if it holds `old`; Ok(false) when it did not.
    pub async fn cas(&self, key: &str, old: &str, new: &str) -> Answer<bool> {
        let body = json!({
            "compare": [{ "key": b64(key), "result": "EQUAL", "target": "VALUE", "value": b64(old) }],
            "success": [{ "request_put": { "key": b64(key), "value": b64(new) } }],
        });
        match self.post("/v3/kv/txn", body).await {
            Answer::Ok(v) => Answer::Ok(v["succeeded"].as_bool().unwrap_or(false)),
            Answer::Fail(e) => Answer::Fail(e),
            Answer::Unknown(e) => Answer::Unknown(e),
        }
    }

    /// The member's view of the cluster: (its id, the leader's id, the raft term).
    pub async fn status(&self) -> Option<(String, String, u64)> {
        let Answer::Ok(v) = self.post("/v3/maintenance/status", json!({})).await else { return None };
        let id = v["header"]["member_id"].as_str()?.parse::<u64>().ok()?;
        let leader = v["leader"].as_str()?.parse::<u64>().ok()?;
        let term = v["raftTerm"].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
        Some((format!("{id:x}"), format!("{leader:x}"), term))
    }

    /// The cluster's members: (name, id in hex).
    pub async fn members(&self) -> Option<Vec<(String, String)>> {
        let Answer::Ok(v) = self.post("/v3/cluster/member/list", json!({})).await else { return None };
        v["members"]
            .as_array()?
            .iter()
            .map(|m| Some((m["name"].as_str()?.to_owned(), format!("{:x}", m["ID"].as_str()?.parse::<u64>().ok()?))))
            .collect()
    }

    /// `GET path` as text (for `/metrics`, `/health`).
    pub async fn get_text(&self, path: &str) -> Option<String> {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.text().await.ok()
    }
}

/// What one operation was: Jepsen's `:f` and `:value` at invocation.
#[derive(Clone, Debug)]
enum Op {
    Read,
    Write(u64),
    Cas(u64, u64),
}

/// The history as it is recorded: EDN lines in real-time order, and counts.
#[derive(Default)]
pub struct Recorder {
    pub edn: String,
    index: u64,
    pub ops: u64,
    pub ok: u64,
    pub failed: u64,
    pub info: u64,
    /// Latencies of completed (`:ok`) operations, in milliseconds.
    pub latencies_ms: Vec<f64>,
    /// (time since the start in seconds, answered?) per operation, for availability: a
    /// compare-and-set that found another value was answered, a timeout was not.
    pub outcomes: Vec<(f64, bool)>,
}

impl Recorder {
    fn line(&mut self, started: Instant, process: &str, kind: &str, f: &str, key: Option<usize>, value: &str) {
        let time = started.elapsed().as_nanos();
        let key = key.map_or(String::new(), |k| format!(", :key {k}"));
        let _ = writeln!(
            self.edn,
            "{{:index {}, :time {time}, :process {process}, :type :{kind}, :f :{f}{key}, :value {value}}}",
            self.index
        );
        self.index += 1;
    }

    /// A nemesis event, as Jepsen logs them in the history (`:process :nemesis`).
    pub fn nemesis(&mut self, started: Instant, f: &str, value: &str) {
        self.line(started, ":nemesis", "info", f, None, &format!("{value:?}"));
    }
}

/// One client's settings.
pub struct ClientSpec {
    pub id: usize,
    pub clients: usize,
    pub keys: usize,
    pub reads: Reads,
    pub timeout: Duration,
    pub think: Duration,
    pub seed: u64,
}

/// Runs one client until `deadline` or until `budget` operations are spent (shared by all
/// clients), recording into `history`.
pub async fn run_client(
    spec: ClientSpec,
    gateways: Vec<Gateway>,
    history: Arc<Mutex<Recorder>>,
    started: Instant,
    deadline: Instant,
    budget: Arc<std::sync::atomic::AtomicU64>,
) {
    use std::sync::atomic::Ordering;
    let mut rng = Rng::new(spec.seed ^ (spec.id as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407));
    let mut process = spec.id as u64;
    let member = spec.id % gateways.len();
    let mut serial: u64 = 0;
    // The last value this client knows of each key: what a compare-and-set expects.
    let mut known: Vec<Option<u64>> = vec![None; spec.keys];
    let record = |f: &mut dyn FnMut(&mut Recorder)| {
        let mut h = history.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut h);
    };
    while Instant::now() < deadline {
        if budget.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1)).is_err() {
            break;
        }
        let key = rng.below(spec.keys as u64) as usize;
        let roll = rng.below(10);
        serial += 1;
        // Unique values: each write is told apart from every other in the history.
        let fresh = (spec.id as u64 + 1) * 1_000_000 + serial;
        let op = match (roll, known[key]) {
            (0..=4, _) => Op::Read,
            (5..=7, _) | (_, None) => Op::Write(fresh),
            (_, Some(old)) => Op::Cas(old, fresh),
        };
        let (f, value) = match &op {
            Op::Read => ("read", "nil".to_owned()),
            Op::Write(v) => ("write", v.to_string()),
            Op::Cas(o, n) => ("cas", format!("[{o} {n}]")),
        };
        let p = process.to_string();
        let gw = &gateways[member];
        let name = format!("k{key}");
        record(&mut |h| {
            h.ops += 1;
            h.line(started, &p, "invoke", f, Some(key), &value);
        });
        let invoked = Instant::now();
        let mut answered = false;
        let (kind, out): (&str, String) = match &op {
            Op::Read => match gw.get(&name, spec.reads).await {
                Answer::Ok(v) => {
                    let parsed = v.as_deref().and_then(|s| s.parse::<u64>().ok());
                    if parsed.is_some() {
                        known[key] = parsed;
                    }
                    ("ok", parsed.map_or("nil".into(), |x| x.to_string()))
                }
                Answer::Fail(_) | Answer::Unknown(_) => ("fail", value.clone()),
            },
            Op::Write(v) => match gw.put(&name, &v.to_string()).await {
                Answer::Ok(()) => {
                    known[key] = Some(*v);
                    ("ok", value.clone())
                }
                Answer::Fail(_) => ("fail", value.clone()),
                Answer::Unknown(_) => ("info", value.clone()),
            },
            Op::Cas(o, n) => match gw.cas(&name, &o.to_string(), &n.to_string()).await {
                Answer::Ok(true) => {
                    known[key] = Some(*n);
                    ("ok", value.clone())
                }
                Answer::Ok(false) => {
                    // It did not hold the expected value: forget it, read before the next.
                    known[key] = None;
                    answered = true;
                    ("fail", value.clone())
                }
                Answer::Fail(_) => ("fail", value.clone()),
                Answer::Unknown(_) => ("info", value.clone()),
            },
        };
        let latency_ms = invoked.elapsed().as_secs_f64() * 1e3;
        let at_s = started.elapsed().as_secs_f64();
        record(&mut |h| {
            h.line(started, &p, kind, f, Some(key), &out);
            match kind {
                "ok" => {
                    h.ok += 1;
                    h.latencies_ms.push(latency_ms);
                }
                "fail" => h.failed += 1,
                _ => h.info += 1,
            }
            h.outcomes.push((at_s, answered || kind == "ok"));
        });
        if kind == "info" {
            process += spec.clients as u64;
        }
        // A client stays with its member, as Jepsen's clients stay with their node: what a
        // cut-off member serves is what the history must show. After an error it backs off
        // a little, so a dead member's clients do not spend the run's operations failing.
        let pause = if kind == "ok" || answered { spec.think } else { spec.think.max(Duration::from_millis(100)) };
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    /// The workload's draws must not change between versions: a seed names the same
    /// operations tomorrow. SplitMix64's published first outputs for seed 0.
    #[test]
    fn the_draws_are_splitmix64() {
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }
}
