//! Latency distributions: what a link's one-way delay, a timing fault's extra delay or a
//! heartbeat's period is drawn from. A leaf module (it depends on [`crate::time`] and
//! [`crate::rng`] only), shared by the network, the fault injector and the protocols.

use rand::Rng;
use rand_distr::{Distribution, LogNormal, Normal, Pareto};

use crate::rng::SimRng;
use crate::time::Span;

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
