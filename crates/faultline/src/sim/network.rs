//! The simulated network: per-link one-way latency distributions and in-flight caps.
//!
//! Each directed link `from -> to` has a latency distribution and its own random stream.
//! A message's delivery time is fixed when it is sent (send time + link latency + any extra
//! delay a timing fault adds), and a message, once on the wire, is delivered even if its
//! sender crashes afterwards: the bytes have left the machine. Links are not FIFO: two
//! messages on one link can overtake each other when their latencies differ, as UDP
//! datagrams or messages on different TCP connections can.

pub use crate::latency::{LatencyDist, Sampler};
use crate::rng::{SimRng, Stream, stream};

/// Per-link latency samplers and streams, and per-link in-flight counters, for `n` nodes.
/// Links are stored densely (`n * n`), indexed `from * n + to`.
pub struct Network {
    nodes: usize,
    links: Vec<Link>,
    inflight_cap: u32,
}

struct Link {
    sampler: Sampler,
    rng: SimRng,
    inflight: u32,
}

impl Network {
    /// `latency(from, to)` gives each directed link's distribution.
    pub fn new(
        root_seed: u64,
        nodes: usize,
        inflight_cap: u32,
        mut latency: impl FnMut(usize, usize) -> LatencyDist,
    ) -> Self {
        let mut links = Vec::with_capacity(nodes * nodes);
        for from in 0..nodes {
            for to in 0..nodes {
                links.push(Link {
                    sampler: latency(from, to).sampler(),
                    rng: stream(root_seed, Stream::Link { from: from as u32, to: to as u32 }),
                    inflight: 0,
                });
            }
        }
        Network { nodes, links, inflight_cap }
    }

    /// Reserves an in-flight slot on `from -> to` and draws its latency, or returns `None`
    /// when the link already carries `inflight_cap` messages (the message is then lost, as
    /// a full socket buffer loses it).
    #[inline(always)]
    pub fn admit(&mut self, from: usize, to: usize) -> Option<u64> {
        let link = &mut self.links[from * self.nodes + to];
        if link.inflight >= self.inflight_cap {
            return None;
        }
        link.inflight += 1;
        Some(link.sampler.sample(&mut link.rng))
    }

    /// Releases the slot a message held once it is delivered or dropped at arrival.
    #[inline(always)]
    pub fn release(&mut self, from: usize, to: usize) {
        let link = &mut self.links[from * self.nodes + to];
        assert!(link.inflight > 0, "released a slot on an idle link {from}->{to}");
        link.inflight -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Stream, stream};
    use crate::time::Span;

    #[test]
    fn uniform_stays_in_bounds_and_covers_ends() {
        let s = LatencyDist::Uniform { min: Span::from_nanos(10), max: Span::from_nanos(12) }.sampler();
        let mut rng = stream(1, Stream::Setup(0));
        let mut seen = [false; 3];
        for _ in 0..1000 {
            let x = s.sample(&mut rng);
            assert!((10..=12).contains(&x));
            seen[(x - 10) as usize] = true;
        }
        assert_eq!(seen, [true; 3]);
    }

    #[test]
    fn normal_is_clamped_at_zero_and_pareto_at_cap() {
        let n = LatencyDist::Normal { mean: Span::from_nanos(1), stddev: Span::from_millis(1) }.sampler();
        let p =
            LatencyDist::Pareto { scale: Span::from_millis(1), shape: 0.5, cap: Some(Span::from_millis(50)) }.sampler();
        let mut rng = stream(2, Stream::Setup(0));
        let mut capped = false;
        for _ in 0..10_000 {
            let _ = n.sample(&mut rng); // u64: never negative by construction
            let x = p.sample(&mut rng);
            assert!((1_000_000..=50_000_000).contains(&x));
            capped |= x == 50_000_000;
        }
        assert!(capped, "a shape-0.5 Pareto should hit a 50x cap within 10k draws");
    }

    #[test]
    fn inflight_cap_refuses_then_frees() {
        let mut net = Network::new(1, 2, 2, |_, _| LatencyDist::Constant(Span::from_millis(1)));
        assert_eq!(net.admit(0, 1), Some(1_000_000));
        assert_eq!(net.admit(0, 1), Some(1_000_000));
        assert_eq!(net.admit(0, 1), None);
        assert!(net.admit(1, 0).is_some(), "the reverse link has its own cap");
        net.release(0, 1);
        assert!(net.admit(0, 1).is_some());
    }
}
