//! The proxy on real sockets (127.0.0.1, ports picked by the OS): each fault is shown to act,
//! and a clean route to pass bytes unchanged, so that every test can fail. Timing claims are
//! lower bounds only (a slow machine makes things slower, never faster).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use faultline_real::proxy::{
    Direction, OmissionMode, PartitionMode, Proxy, RouteSpec, StreamFault, StreamFaultKind as K,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// How long a test waits to conclude that nothing arrives.
const QUIET: Duration = Duration::from_millis(300);
/// How long a test waits for something that should arrive.
const PATIENCE: Duration = Duration::from_secs(5);

/// An echo server: every connection gets back what it sends.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A server that reports what each connection sends (on the channel) and writes a tick to
/// it every 20 ms: traffic both ways, observable apart.
async fn ticking_server() -> (SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                tokio::spawn(async move {
                    while w.write_all(b"t").await.is_ok() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                });
                let mut buf = [0u8; 4096];
                while let Ok(n) = r.read(&mut buf).await {
                    if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, rx)
}

async fn proxy_to(upstream: SocketAddr) -> Proxy {
    let route =
        RouteSpec { name: "r".into(), listen: "127.0.0.1:0".parse().expect("addr"), upstream: upstream.to_string() };
    Proxy::start(vec![route], None, 7).await.expect("proxy starts")
}

async fn connect(proxy: &Proxy) -> TcpStream {
    let s = TcpStream::connect(proxy.route_addr("r").expect("route")).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Sends `bytes` and reads back as many, or fails after `wait`.
async fn round_trip(s: &mut TcpStream, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    s.write_all(bytes).await.ok()?;
    let mut back = vec![0u8; bytes.len()];
    match tokio::time::timeout(wait, s.read_exact(&mut back)).await {
        Ok(Ok(_)) => Some(back),
        _ => None,
    }
}

/// Whether the connection was closed or reset (rather than left silent) within `PATIENCE`.
async fn is_closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(PATIENCE, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

fn pseudo_random(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn a_clean_route_passes_bytes_unchanged() {
    let proxy = proxy_to(echo_server().await).await;
    let mut s = connect(&proxy).await;
    let data = pseudo_random(300_000);
    let (mut r, mut w) = s.split();
    let send = async {
        w.write_all(&data).await.expect("write");
    };
    let mut back = vec![0u8; data.len()];
    let recv = r.read_exact(&mut back);
    let (_, got) = tokio::join!(send, recv);
    got.expect("read");
    assert!(back == data, "bytes changed on a clean route");
    let stats = proxy.stats("r").expect("stats");
    assert_eq!(stats.bytes_upstream, data.len() as u64);
    assert_eq!(stats.connections, 1);
    proxy.shutdown().await;
}

#[tokio::test]
async fn delay_adds_at_least_the_latency_each_way() {
    let proxy = proxy_to(echo_server().await).await;
    proxy.add_fault("r", StreamFault::new(K::Delay { latency_ms: 100, jitter_ms: 20 })).expect("add");
    let mut s = connect(&proxy).await;
    let start = Instant::now();
    assert_eq!(round_trip(&mut s, b"ping", PATIENCE).await.as_deref(), Some(&b"ping"[..]));
    // 100 ms less 20 ms of jitter, each way.
    assert!(start.elapsed() >= Duration::from_millis(160), "round trip took {:?}", start.elapsed());
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_stall_partition_holds_live_and_new_connections_and_lifts() {
    let proxy = proxy_to(echo_server().await).await;
    let mut live = connect(&proxy).await;
    assert!(round_trip(&mut live, b"one", PATIENCE).await.is_some());
    let id = proxy.add_fault("r", StreamFault::new(K::Partition { mode: PartitionMode::Stall })).expect("add");
    assert_eq!(round_trip(&mut live, b"two", QUIET).await, None, "a live connection crossed a stall");
    let mut new = connect(&proxy).await;
    assert_eq!(round_trip(&mut new, b"new", QUIET).await, None, "a new connection crossed a stall");
    proxy.remove_fault("r", id).expect("remove");
    // Held bytes go once the partition lifts, in order.
    let mut back = [0u8; 3];
    tokio::time::timeout(PATIENCE, live.read_exact(&mut back)).await.expect("resumed").expect("read");
    assert_eq!(&back, b"two");
    tokio::time::timeout(PATIENCE, new.read_exact(&mut back)).await.expect("resumed").expect("read");
    assert_eq!(&back, b"new");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_reset_partition_resets_live_and_new_connections_and_lifts() {
    let proxy = proxy_to(echo_server().await).await;
    let mut live = connect(&proxy).await;
    assert!(round_trip(&mut live, b"one", PATIENCE).await.is_some());
    let id = proxy.add_fault("r", StreamFault::new(K::Partition { mode: PartitionMode::Reset })).expect("add");
    assert!(is_closed(&mut live).await, "a live connection survived a reset partition");
    let mut new = connect(&proxy).await;
    assert!(is_closed(&mut new).await, "a new connection survived a reset partition");
    proxy.remove_fault("r", id).expect("remove");
    let mut after = connect(&proxy).await;
    assert!(round_trip(&mut after, b"after", PATIENCE).await.is_some());
    assert!(proxy.stats("r").expect("stats").resets >= 2);
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_refuse_partition_closes_new_connections_at_once() {
    let proxy = proxy_to(echo_server().await).await;
    let mut live = connect(&proxy).await;
    assert!(round_trip(&mut live, b"one", PATIENCE).await.is_some());
    let id = proxy.add_fault("r", StreamFault::new(K::Partition { mode: PartitionMode::Refuse })).expect("add");
    let mut new = connect(&proxy).await;
    assert!(is_closed(&mut new).await);
    assert!(is_closed(&mut live).await, "a live connection survived a refuse partition");
    assert_eq!(proxy.stats("r").expect("stats").refused, 1);
    proxy.remove_fault("r", id).expect("remove");
    let mut after = connect(&proxy).await;
    assert!(round_trip(&mut after, b"after", PATIENCE).await.is_some());
    proxy.shutdown().await;
}

/// Whether a tick arrives within `QUIET`, after 100 ms spent draining what was on its way.
async fn ticks_flow(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let drained = tokio::time::Instant::now() + Duration::from_millis(100);
    while let Ok(Ok(n)) = tokio::time::timeout_at(drained, s.read(&mut buf)).await {
        if n == 0 {
            return false;
        }
    }
    matches!(tokio::time::timeout(QUIET, s.read(&mut buf)).await, Ok(Ok(n)) if n > 0)
}

/// Whether the server receives `bytes` within `wait`.
async fn server_gets(rx: &mut mpsc::UnboundedReceiver<Vec<u8>>, wait: Duration) -> bool {
    matches!(tokio::time::timeout(wait, rx.recv()).await, Ok(Some(_)))
}

#[tokio::test]
async fn a_one_way_partition_cuts_one_direction_only() {
    let (upstream, mut received) = ticking_server().await;
    let proxy = proxy_to(upstream).await;
    let mut s = connect(&proxy).await;
    assert!(ticks_flow(&mut s).await);
    s.write_all(b"a").await.expect("write");
    assert!(server_gets(&mut received, PATIENCE).await);

    let up = StreamFault::new(K::Partition { mode: PartitionMode::Stall }).direction(Direction::Upstream);
    let id = proxy.add_fault("r", up).expect("add");
    s.write_all(b"b").await.expect("write");
    assert!(!server_gets(&mut received, QUIET).await, "client bytes crossed an upstream cut");
    assert!(ticks_flow(&mut s).await, "server bytes were cut by an upstream cut");
    proxy.remove_fault("r", id).expect("remove");
    assert!(server_gets(&mut received, PATIENCE).await, "held bytes did not resume");

    let down = StreamFault::new(K::Partition { mode: PartitionMode::Stall }).direction(Direction::Downstream);
    proxy.add_fault("r", down).expect("add");
    assert!(!ticks_flow(&mut s).await, "server bytes crossed a downstream cut");
    s.write_all(b"c").await.expect("write");
    assert!(server_gets(&mut received, PATIENCE).await, "client bytes were cut by a downstream cut");
    proxy.shutdown().await;
}

#[tokio::test]
async fn half_open_holds_the_connection_and_forwards_nothing() {
    let (upstream, mut received) = ticking_server().await;
    let proxy = proxy_to(upstream).await;
    proxy.add_fault("r", StreamFault::new(K::HalfOpen)).expect("add");
    let mut s = connect(&proxy).await;
    s.write_all(b"swallowed").await.expect("write accepted");
    assert!(!server_gets(&mut received, QUIET).await, "half-open forwarded client bytes");
    assert!(!ticks_flow(&mut s).await, "half-open forwarded server bytes");
    // Neither closed nor reset: a read just waits.
    let mut buf = [0u8; 8];
    assert!(tokio::time::timeout(QUIET, s.read(&mut buf)).await.is_err(), "half-open closed the connection");
    assert!(proxy.stats("r").expect("stats").bytes_discarded > 0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn omission_with_p_1_resets_or_stalls() {
    let proxy = proxy_to(echo_server().await).await;
    let reset = proxy.add_fault("r", StreamFault::new(K::Omission { p: 1.0, mode: OmissionMode::Reset })).expect("add");
    let mut s = connect(&proxy).await;
    s.write_all(b"x").await.expect("write");
    assert!(is_closed(&mut s).await, "omission with reset left the connection open");
    proxy.remove_fault("r", reset).expect("remove");

    let stall = proxy.add_fault("r", StreamFault::new(K::Omission { p: 1.0, mode: OmissionMode::Stall })).expect("add");
    let mut s = connect(&proxy).await;
    assert_eq!(round_trip(&mut s, b"y", QUIET).await, None, "omission with stall forwarded");
    proxy.remove_fault("r", stall).expect("remove");
    let mut back = [0u8; 1];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut back)).await.expect("resumed").expect("read");
    assert_eq!(&back, b"y");
    assert!(proxy.stats("r").expect("stats").omitted >= 2);

    // p = 0 strikes nothing.
    proxy.add_fault("r", StreamFault::new(K::Omission { p: 0.0, mode: OmissionMode::Reset })).expect("add");
    let mut s = connect(&proxy).await;
    for _ in 0..20 {
        assert!(round_trip(&mut s, b"z", PATIENCE).await.is_some());
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn bandwidth_limits_the_rate() {
    let proxy = proxy_to(echo_server().await).await;
    let limit = StreamFault::new(K::Bandwidth { bytes_per_s: 32 * 1024 }).direction(Direction::Upstream);
    proxy.add_fault("r", limit).expect("add");
    let mut s = connect(&proxy).await;
    let data = pseudo_random(64 * 1024);
    let start = Instant::now();
    let back = round_trip(&mut s, &data, Duration::from_secs(20)).await.expect("all of it, eventually");
    assert!(back == data);
    assert!(start.elapsed() >= Duration::from_millis(1500), "64 KiB at 32 KiB/s took {:?}", start.elapsed());
    proxy.shutdown().await;
}

/// How many bits differ between two equally long byte strings.
fn bits_apart(a: &[u8], b: &[u8]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

#[tokio::test]
async fn flip_and_tamper_change_bytes_and_p_0_changes_none() {
    for (kind, changes) in [
        (K::Flip { p: 1.0 }, true),
        (K::Tamper { p: 1.0 }, true),
        (K::Flip { p: 0.0 }, false),
        (K::Tamper { p: 0.0 }, false),
    ] {
        let proxy = proxy_to(echo_server().await).await;
        // One way only, so that a bit flipped going up is not flipped back coming down.
        proxy.add_fault("r", StreamFault::new(kind.clone()).direction(Direction::Upstream)).expect("add");
        let mut s = connect(&proxy).await;
        let data = pseudo_random(1000);
        let back = round_trip(&mut s, &data, PATIENCE).await.expect("echoed");
        let apart = bits_apart(&data, &back);
        if changes {
            assert!(apart > 0, "{kind:?} changed nothing");
            if matches!(kind, K::Flip { .. }) {
                // One bit per chunk; the echo may have read the 1000 bytes in several.
                assert!(apart <= 4, "{kind:?} changed {apart} bits");
            }
        } else {
            assert_eq!(apart, 0, "{kind:?} changed bytes");
        }
        let stats = proxy.stats("r").expect("stats");
        assert_eq!(stats.flipped + stats.tampered > 0, changes);
        proxy.shutdown().await;
    }
}

#[tokio::test]
async fn replay_repeats_an_earlier_chunk() {
    let proxy = proxy_to(echo_server().await).await;
    proxy.add_fault("r", StreamFault::new(K::Replay { p: 1.0 }).direction(Direction::Upstream)).expect("add");
    let mut s = connect(&proxy).await;
    assert_eq!(round_trip(&mut s, b"first", PATIENCE).await.as_deref(), Some(&b"first"[..]));
    // The second chunk is followed by the only earlier one.
    assert_eq!(round_trip(&mut s, b"second", PATIENCE).await.as_deref(), Some(&b"second"[..]));
    let mut again = [0u8; 5];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut again)).await.expect("replayed").expect("read");
    assert_eq!(&again, b"first");
    assert_eq!(proxy.stats("r").expect("stats").replayed, 1);
    proxy.shutdown().await;
}

fn http_request(from: &str) -> Vec<u8> {
    format!("POST /raft HTTP/1.1\r\nHost: x\r\nX-Server-From: {from}\r\nContent-Length: 0\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn matches_confines_a_fault_to_matching_connections_new_and_live() {
    let proxy = proxy_to(echo_server().await).await;
    // Live connections, their prefixes known before the fault.
    let mut live_a = connect(&proxy).await;
    let mut live_b = connect(&proxy).await;
    assert!(round_trip(&mut live_a, &http_request("aaaa"), PATIENCE).await.is_some());
    assert!(round_trip(&mut live_b, &http_request("bbbb"), PATIENCE).await.is_some());
    let cut = StreamFault::new(K::Partition { mode: PartitionMode::Stall }).matching("X-Server-From: aaaa");
    let id = proxy.add_fault("r", cut).expect("add");
    assert_eq!(round_trip(&mut live_a, b"more", QUIET).await, None, "a matching live connection crossed");
    assert!(
        round_trip(&mut live_b, b"more", PATIENCE).await.is_some(),
        "a live connection that does not match was cut"
    );
    // New connections: the first request itself is held when it matches.
    let mut new_a = connect(&proxy).await;
    let mut new_b = connect(&proxy).await;
    assert_eq!(round_trip(&mut new_a, &http_request("aaaa"), QUIET).await, None, "a matching new connection crossed");
    assert!(round_trip(&mut new_b, &http_request("bbbb"), PATIENCE).await.is_some());
    proxy.remove_fault("r", id).expect("remove");
    let request = http_request("aaaa");
    let mut back = vec![0u8; request.len()];
    tokio::time::timeout(PATIENCE, new_a.read_exact(&mut back)).await.expect("resumed").expect("read");
    assert_eq!(back, request);
    // A reset confined by matches kills only the matching connection.
    let reset = StreamFault::new(K::Partition { mode: PartitionMode::Reset }).matching("X-Server-From: bbbb");
    proxy.add_fault("r", reset).expect("add");
    assert!(is_closed(&mut live_b).await);
    assert!(round_trip(&mut live_a, b"x", PATIENCE).await.is_some(), "a connection that does not match was reset");
    proxy.shutdown().await;
}

/// A server that answers every HTTP/1 request on a connection with an empty 200 (bodies
/// of `Content-Length` bytes read and skipped), keeping the connection alive.
async fn http_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match s.read(&mut buf).await {
                            Ok(n @ 1..) => pending.extend_from_slice(&buf[..n]),
                            _ => return,
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&pending[..end]).to_string();
                    let body: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|n| n.trim().parse().ok())
                        .unwrap_or(0);
                    while pending.len() < end + 4 + body {
                        match s.read(&mut buf).await {
                            Ok(n @ 1..) => pending.extend_from_slice(&buf[..n]),
                            _ => return,
                        }
                    }
                    pending.drain(..end + 4 + body);
                    if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Sends one request and whether its answer came within `wait`.
async fn ask(s: &mut TcpStream, request: &[u8], wait: Duration) -> bool {
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    if s.write_all(request).await.is_err() {
        return false;
    }
    let mut back = vec![0u8; answer.len()];
    matches!(tokio::time::timeout(wait, s.read_exact(&mut back)).await, Ok(Ok(_))) && back == answer
}

const PROBE: &[u8] = b"GET /raft/probing HTTP/1.1\r\nHost: x\r\n\r\n";

fn post(from: &str) -> Vec<u8> {
    format!("POST /raft HTTP/1.1\r\nHost: x\r\nX-Server-From: {from}\r\nContent-Length: 5\r\n\r\nhello").into_bytes()
}

#[tokio::test]
async fn matches_judges_every_request_of_a_kept_alive_connection() {
    let proxy = proxy_to(http_server().await).await;
    let cut = StreamFault::new(K::Partition { mode: PartitionMode::Reset }).matching("X-Server-From: aaaa");
    let id = proxy.add_fault("r", cut).expect("add");
    // The first request does not match; the second, on the same connection, does.
    let mut reused = connect(&proxy).await;
    assert!(ask(&mut reused, PROBE, PATIENCE).await, "a request that does not match was cut");
    assert!(!ask(&mut reused, &post("aaaa"), QUIET).await, "a matching second request crossed");
    assert!(is_closed(&mut reused).await, "the kept-alive connection was not cut at its matching request");
    // Another member's connection, the same shape, is untouched (a body that follows its
    // head is not taken for a head).
    let mut other = connect(&proxy).await;
    assert!(ask(&mut other, PROBE, PATIENCE).await);
    assert!(ask(&mut other, &post("bbbb"), PATIENCE).await, "a request that does not match was cut");
    assert!(ask(&mut other, &post("bbbb"), PATIENCE).await);
    proxy.remove_fault("r", id).expect("remove");
    // A connection that once carried a matching request matches from then on: a fault
    // added later acts on its next request, whatever that request says.
    let mut live = connect(&proxy).await;
    assert!(ask(&mut live, PROBE, PATIENCE).await);
    assert!(ask(&mut live, &post("aaaa"), PATIENCE).await);
    let stall = StreamFault::new(K::Partition { mode: PartitionMode::Stall }).matching("X-Server-From: aaaa");
    let id = proxy.add_fault("r", stall).expect("add");
    assert!(!ask(&mut live, PROBE, QUIET).await, "a connection that had matched crossed a later fault");
    assert!(ask(&mut other, PROBE, PATIENCE).await, "a connection that never matched was held");
    proxy.remove_fault("r", id).expect("remove");
    proxy.shutdown().await;
}

#[tokio::test]
async fn the_control_api_adds_lists_and_removes_faults() {
    let upstream = echo_server().await;
    let route =
        RouteSpec { name: "r".into(), listen: "127.0.0.1:0".parse().expect("addr"), upstream: upstream.to_string() };
    let proxy = Proxy::start(vec![route], Some("127.0.0.1:0".parse().expect("addr")), 1).await.expect("start");
    let api = format!("http://{}", proxy.control_addr().expect("control"));
    let http = reqwest::Client::new();

    let names: serde_json::Value =
        http.get(format!("{api}/faults")).send().await.expect("get").json().await.expect("json");
    assert!(names["stream"].as_array().expect("list").iter().any(|n| n == "partition"));

    let added = http
        .post(format!("{api}/routes/r/faults"))
        .body(r#"{"kind": "partition", "mode": "stall"}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(added.status(), 201);
    let id = added.json::<serde_json::Value>().await.expect("json")["id"].as_u64().expect("id");
    let mut s = connect(&proxy).await;
    assert_eq!(round_trip(&mut s, b"held", QUIET).await, None, "the posted partition did not act");

    let routes: serde_json::Value =
        http.get(format!("{api}/routes")).send().await.expect("get").json().await.expect("json");
    assert_eq!(routes[0]["name"], "r");
    assert_eq!(routes[0]["faults"][0]["id"], id);
    assert_eq!(routes[0]["faults"][0]["kind"], "partition");
    assert_eq!(routes[0]["stats"]["connections"], 1);

    let removed = http.delete(format!("{api}/routes/r/faults/{id}")).send().await.expect("delete");
    assert_eq!(removed.status(), 204);
    let mut back = [0u8; 4];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut back)).await.expect("resumed").expect("read");
    assert_eq!(&back, b"held");

    let bad = http.post(format!("{api}/routes/r/faults")).body("{not json").send().await.expect("post");
    assert_eq!(bad.status(), 400);
    let message = bad.json::<serde_json::Value>().await.expect("json")["error"].as_str().expect("text").to_owned();
    assert!(!message.contains('\n'));
    let bad = http.post(format!("{api}/routes/r/faults")).body(r#"{"kind": "equivocate"}"#).send().await.expect("post");
    assert_eq!(bad.status(), 400);
    let message = bad.json::<serde_json::Value>().await.expect("json")["error"].as_str().expect("text").to_owned();
    assert!(message.contains("no real mechanism") && message.contains("delay, partition"), "{message}");
    let missing = http.delete(format!("{api}/routes/nope/faults")).send().await.expect("delete");
    assert_eq!(missing.status(), 404);
    http.post(format!("{api}/routes/r/faults"))
        .body(r#"{"kind": "delay", "latency_ms": 1}"#)
        .send()
        .await
        .expect("post");
    let cleared = http.delete(format!("{api}/routes/r/faults")).send().await.expect("delete");
    assert_eq!(cleared.status(), 204);
    assert_eq!(proxy.faults("r").expect("route").len(), 0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_live_connections() {
    let proxy = proxy_to(echo_server().await).await;
    let mut s = connect(&proxy).await;
    assert!(round_trip(&mut s, b"x", PATIENCE).await.is_some());
    proxy.shutdown().await;
    assert!(is_closed(&mut s).await);
}

#[tokio::test]
async fn a_one_way_reset_partition_resets_at_the_first_byte_that_crosses() {
    let (upstream, mut received) = ticking_server().await;
    let proxy = proxy_to(upstream).await;
    let mut s = connect(&proxy).await;
    let up = StreamFault::new(K::Partition { mode: PartitionMode::Reset }).direction(Direction::Upstream);
    proxy.add_fault("r", up).expect("add");
    // Server to client still flows: the cut is the other way, and nothing has crossed it.
    assert!(ticks_flow(&mut s).await, "a one-way reset cut the other way");
    s.write_all(b"x").await.expect("write");
    assert!(is_closed(&mut s).await, "a byte crossed a one-way reset partition");
    assert!(!server_gets(&mut received, QUIET).await);
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_refuse_partition_with_matches_resets_matching_connections_at_the_verdict() {
    let proxy = proxy_to(echo_server().await).await;
    let refuse = StreamFault::new(K::Partition { mode: PartitionMode::Refuse }).matching("X-Server-From: aaaa");
    proxy.add_fault("r", refuse).expect("add");
    let mut a = connect(&proxy).await;
    a.write_all(&http_request("aaaa")).await.expect("write");
    assert!(is_closed(&mut a).await, "a matching connection was not refused");
    let mut b = connect(&proxy).await;
    assert!(
        round_trip(&mut b, &http_request("bbbb"), PATIENCE).await.is_some(),
        "a connection that does not match was refused"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn delay_with_jitter_keeps_the_order_of_bytes() {
    let proxy = proxy_to(echo_server().await).await;
    proxy.add_fault("r", StreamFault::new(K::Delay { latency_ms: 20, jitter_ms: 20 })).expect("add");
    let mut s = connect(&proxy).await;
    let mut sent = Vec::new();
    for i in 0..50u8 {
        s.write_all(&[i]).await.expect("write");
        sent.push(i);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut back = vec![0u8; sent.len()];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut back)).await.expect("all back").expect("read");
    assert_eq!(back, sent, "jitter reordered bytes");
    proxy.shutdown().await;
}
