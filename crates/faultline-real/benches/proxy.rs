//! The proxy's overhead on this machine: request/response round trips (64-byte ping-pong on
//! one connection) and streamed throughput, each direct and through one proxy hop with no
//! fault, in the same run, so the ratios compare like with like.
//!
//! `cargo bench -p faultline-real --bench proxy [-- --round-trips N --mib M --rounds R]`
//!
//! The proxy runs on a runtime of its own (two worker threads, as `faultline proxy` would
//! on this machine's two cores); the client and the servers run on another, the same for
//! the direct and the proxied measurement.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use faultline_real::proxy::{Proxy, RouteSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MESSAGE_BYTES: usize = 64;
const WRITE_BYTES: usize = 64 * 1024;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Echoes every connection.
async fn echo_server() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    Ok(addr)
}

/// Reads each connection to its end, then answers one byte: the sender's clock stops when
/// the last byte has really arrived.
async fn sink_server() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; WRITE_BYTES];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        let _ = s.write_all(b"k").await;
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// Round-trip times in µs of `count` 64-byte ping-pongs on one connection to `addr`.
async fn round_trips(addr: SocketAddr, count: u64) -> std::io::Result<Vec<f64>> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let ping = [7u8; MESSAGE_BYTES];
    let mut pong = [0u8; MESSAGE_BYTES];
    // Warm up: connection set-up, the proxy's prefix, caches.
    for _ in 0..count / 20 {
        s.write_all(&ping).await?;
        s.read_exact(&mut pong).await?;
    }
    let mut times = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let start = Instant::now();
        s.write_all(&ping).await?;
        s.read_exact(&mut pong).await?;
        times.push(start.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    Ok(times)
}

/// MiB/s of `mib` MiB streamed to `addr`.
async fn throughput(addr: SocketAddr, mib: u64) -> std::io::Result<f64> {
    let mut s = TcpStream::connect(addr).await?;
    let block = vec![0x5au8; WRITE_BYTES];
    let total = mib * (1 << 20);
    let start = Instant::now();
    let mut sent = 0;
    while sent < total {
        s.write_all(&block).await?;
        sent += WRITE_BYTES as u64;
    }
    s.shutdown().await?;
    let mut ack = [0u8; 1];
    s.read_exact(&mut ack).await?;
    Ok(mib as f64 / start.elapsed().as_secs_f64())
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// The median, the least and the most of `values`.
fn spread(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (percentile(values, 0.5), percentile(values, 0.0), percentile(values, 1.0))
}

fn main() -> anyhow::Result<()> {
    let count = arg("--round-trips", 20_000);
    let mib = arg("--mib", 512);
    let rounds = arg("--rounds", 5).max(1);
    let proxy_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let load = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (echo, sink) =
        load.block_on(async { Ok::<_, std::io::Error>((echo_server().await?, sink_server().await?)) })?;
    let route = |name: &str, upstream: SocketAddr| RouteSpec {
        name: name.into(),
        listen: "127.0.0.1:0".parse().expect("a literal address"),
        upstream: upstream.to_string(),
    };
    let proxy = proxy_runtime.block_on(Proxy::start(vec![route("echo", echo), route("sink", sink)], None, 1))?;
    let proxied_echo = proxy.route_addr("echo").ok_or_else(|| anyhow::anyhow!("no echo route"))?;
    let proxied_sink = proxy.route_addr("sink").ok_or_else(|| anyhow::anyhow!("no sink route"))?;

    // The machine is shared: each measurement is taken `rounds` times, direct and proxied
    // alternating, and the median of each figure is reported, with its spread.
    println!("round trips: {count} x {MESSAGE_BYTES} B ping-pong on one connection, median of {rounds} rounds");
    let mut figures: [Vec<f64>; 6] = Default::default();
    for _ in 0..rounds {
        let direct = load.block_on(round_trips(echo, count))?;
        let proxied = load.block_on(round_trips(proxied_echo, count))?;
        let (d50, d99) = (percentile(&direct, 0.5), percentile(&direct, 0.99));
        let (p50, p99) = (percentile(&proxied, 0.5), percentile(&proxied, 0.99));
        for (list, value) in figures.iter_mut().zip([d50, d99, p50, p99, p50 - d50, p99 - d99]) {
            list.push(value);
        }
    }
    let m: Vec<(f64, f64, f64)> = figures.iter_mut().map(|l| spread(l)).collect();
    let show = |(median, low, high): (f64, f64, f64)| format!("{median:7.1} µs [{low:.1}..{high:.1}]");
    println!("  direct   p50 {}  p99 {}", show(m[0]), show(m[1]));
    println!("  proxied  p50 {}  p99 {}", show(m[2]), show(m[3]));
    println!("  added    p50 {}  p99 {}  per hop (a round trip crosses it twice)", show(m[4]), show(m[5]));

    println!("throughput: {mib} MiB streamed in {} KiB writes, median of {rounds} rounds", WRITE_BYTES / 1024);
    let (mut direct, mut proxied, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let d = load.block_on(throughput(sink, mib))?;
        let p = load.block_on(throughput(proxied_sink, mib))?;
        direct.push(d);
        proxied.push(p);
        ratio.push(p / d);
    }
    let show = |(median, low, high): (f64, f64, f64)| format!("{median:6.0} MiB/s [{low:.0}..{high:.0}]");
    println!("  direct   {}", show(spread(&mut direct)));
    println!("  proxied  {}", show(spread(&mut proxied)));
    let (r, low, high) = spread(&mut ratio);
    println!("  proxied / direct {r:.2} [{low:.2}..{high:.2}]");

    proxy_runtime.block_on(proxy.shutdown());
    load.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
