//! The simulated network: per-link one-way latency distributions and in-flight caps.
//!
//! Each directed link `from -> to` has a latency distribution and its own random stream.
//! A message's delivery time is fixed when it is sent (send time + link latency + any extra
//! delay a timing fault adds), and a message, once on the wire, is delivered even if its
//! sender crashes afterwards: the bytes have left the machine. Links are not FIFO: two
//! messages on one link can overtake each other when their latencies differ, as UDP
//! datagrams or messages on different TCP connections can.

use rand::Rng;
use rand_distr::{Distribution, LogNormal, Normal, Pareto};

use super::rng::{SimRng, Stream, stream};
use super::time::Span;

/// A distribution of non-negative delays. Samples are in nanoseconds; negative samples of
/// the normal distribution are clamped to zero (a message cannot arrive before it is sent).
#[derive(Clone, Debug, PartialEq)]
pub enum LatencyDist {
    /// Always the same delay.
    Constant(Span),
    /// Uniform over `[min, max]`, inclusive, in whole nanoseconds.
    Uniform { min: Span, max: Span },
    /// Normal with the given mean and standard deviation, clamped at zero.
    Normal { mean: Span, stddev: Span },
    /// Log-normal: `exp(N(ln median, sigma))`; `sigma` is the shape, unitless.
    LogNormal { median: Span, sigma: f64 },
    /// Pareto (type I) with scale `x_m` and shape `alpha`: never below `scale`, heavy tail
    /// for small `alpha`. Optionally capped, so a tail cannot push past the run's horizon.
    Pareto { scale: Span, shape: f64, cap: Option<Span> },
}

/// A [`LatencyDist`] prepared for fast repeated sampling.
#[derive(Clone, Debug)]
pub enum Sampler {
    Constant(u64),
    /// `[min, min + width]`; [`LatencyDist::sampler`] builds a zero width as a constant.
    Uniform {
        min: u64,
        width: u64,
    },
    Normal(Normal<f64>),
    LogNormal(LogNormal<f64>),
    Pareto {
        dist: Pareto<f64>,
        cap: u64,
    },
}

impl LatencyDist {
    /// Prepares the distribution. Parameters are checked by scenario validation; a
    /// distribution built by hand with impossible parameters degrades to a constant.
    pub fn sampler(&self) -> Sampler {
        match *self {
            LatencyDist::Constant(d) => Sampler::Constant(d.as_nanos()),
            LatencyDist::Uniform { min, max } => {
                let (lo, hi) = (min.as_nanos().min(max.as_nanos()), min.as_nanos().max(max.as_nanos()));
                // A zero-width uniform is a constant, and like one draws nothing.
                if hi == lo { Sampler::Constant(lo) } else { Sampler::Uniform { min: lo, width: hi - lo } }
            }
            LatencyDist::Normal { mean, stddev } => {
                match Normal::new(mean.as_nanos() as f64, stddev.as_nanos() as f64) {
                    Ok(n) => Sampler::Normal(n),
                    Err(_) => Sampler::Constant(mean.as_nanos()),
                }
            }
            LatencyDist::LogNormal { median, sigma } => {
                match LogNormal::new((median.as_nanos().max(1) as f64).ln(), sigma) {
                    Ok(d) => Sampler::LogNormal(d),
                    Err(_) => Sampler::Constant(median.as_nanos()),
                }
            }
            LatencyDist::Pareto { scale, shape, cap } => match Pareto::new(scale.as_nanos().max(1) as f64, shape) {
                Ok(dist) => Sampler::Pareto { dist, cap: cap.map_or(u64::MAX, Span::as_nanos) },
                Err(_) => Sampler::Constant(scale.as_nanos()),
            },
        }
    }

    /// The smallest delay the distribution can produce.
    pub fn min(&self) -> Span {
        match *self {
            LatencyDist::Constant(d) => d,
            LatencyDist::Uniform { min, max } => min.min(max),
            LatencyDist::Pareto { scale, .. } => scale,
            LatencyDist::Normal { .. } | LatencyDist::LogNormal { .. } => Span::ZERO,
        }
    }
}

impl Sampler {
    /// One delay in nanoseconds. A constant draws nothing from the stream.
    #[inline(always)]
    pub fn sample(&self, rng: &mut SimRng) -> u64 {
        match self {
            Sampler::Constant(d) => *d,
            Sampler::Uniform { min, width } => {
                // Lemire's multiply-shift: unbiased enough for delays (bias < width/2^64)
                // and branch-free, which matters on the hot send path.
                let r = rng.next_u64();
                min + ((r as u128 * (*width as u128 + 1)) >> 64) as u64
            }
            Sampler::Normal(n) => n.sample(rng).max(0.0) as u64,
            Sampler::LogNormal(d) => d.sample(rng).min(u64::MAX as f64) as u64,
            Sampler::Pareto { dist, cap } => (dist.sample(rng).min(u64::MAX as f64) as u64).min(*cap),
        }
    }
}

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
    use crate::sim::rng::{Stream, stream};

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
