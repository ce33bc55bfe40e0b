//! A sliding window of the most recent inter-arrival intervals, with running sums so that
//! adding a sample and reading the mean and variance cost O(1). It plays the role of Akka's
//! `HeartbeatHistory` and Cassandra's `ArrayBackedBoundedStats`.
//!
//! Unlike Akka, which keeps its sums in `Long` milliseconds and computes the variance in
//! floating point as `E[x²] - mean²`, this window keeps nanosecond sums in `u128` and
//! computes `n·Σx² - (Σx)²` exactly in integers, so the variance is never negative and
//! evicting a sample leaves no rounding residue behind.

/// Intervals in nanoseconds (or any unit: the window does not care), at most `capacity`.
#[derive(Clone, Debug)]
pub(crate) struct IntervalWindow {
    /// A ring buffer once full: `samples[oldest]` is the next sample to evict.
    samples: Vec<u64>,
    capacity: usize,
    oldest: usize,
    sum: u128,
    sum_of_squares: u128,
}

impl IntervalWindow {
    pub(crate) fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "an interval window holds at least one sample");
        // The buffer grows on demand: a detector that sees ten heartbeats allocates for ten.
        IntervalWindow { samples: Vec::new(), capacity, oldest: 0, sum: 0, sum_of_squares: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.samples.len()
    }

    pub(crate) fn clear(&mut self) {
        self.samples.clear();
        self.oldest = 0;
        self.sum = 0;
        self.sum_of_squares = 0;
    }

    /// Appends a sample, evicting the oldest one if the window is full.
    pub(crate) fn push(&mut self, sample: u64) {
        if self.samples.len() < self.capacity {
            self.samples.push(sample);
        } else {
            let evicted = std::mem::replace(&mut self.samples[self.oldest], sample);
            self.oldest = (self.oldest + 1) % self.capacity;
            self.sum -= u128::from(evicted);
            self.sum_of_squares -= square(evicted);
        }
        // With at most SAMPLE_SIZE_MAX (2^20) samples, these overflow only for intervals
        // above 2^54 ns (more than half a year); a detector fed such intervals is a bug.
        self.sum = self.sum.checked_add(u128::from(sample)).expect("interval sum overflows u128");
        self.sum_of_squares =
            self.sum_of_squares.checked_add(square(sample)).expect("sum of squared intervals overflows u128");
    }

    /// The mean of the samples. NaN if the window is empty.
    pub(crate) fn mean(&self) -> f64 {
        self.sum as f64 / self.samples.len() as f64
    }

    /// The population variance of the samples (divided by n, as Akka does). NaN if empty.
    pub(crate) fn variance(&self) -> f64 {
        let n = self.samples.len() as u128;
        let exact = n.checked_mul(self.sum_of_squares).zip(self.sum.checked_mul(self.sum)).zip(n.checked_mul(n));
        match exact {
            // n·Σx² ≥ (Σx)² by the Cauchy-Schwarz inequality, so this cannot underflow.
            Some(((n_sum_of_squares, sum_squared), n_squared)) => {
                (n_sum_of_squares - sum_squared) as f64 / n_squared as f64
            }
            None => {
                let mean = self.mean();
                (self.sum_of_squares as f64 / n as f64 - mean * mean).max(0.0)
            }
        }
    }
}

fn square(x: u64) -> u128 {
    u128::from(x) * u128::from(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(capacity: usize, samples: &[u64]) -> IntervalWindow {
        let mut w = IntervalWindow::new(capacity);
        samples.iter().for_each(|&s| w.push(s));
        w
    }

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    /// Akka's AccrualFailureDetectorSpec, "Statistics for heartbeats": "calculate correct
    /// mean and variance" and "have 0.0 variance for one sample".
    #[test]
    fn mean_and_variance_match_akka_reference_values() {
        let w = window(20, &[100, 200, 125, 340, 130]);
        assert!(close(w.mean(), 179.0, 1e-5));
        assert!(close(w.variance(), 7584.0, 1e-5));
        assert_eq!(window(600, &[1000]).variance(), 0.0);
    }

    /// Akka's "be capped by the specified maxSampleSize".
    #[test]
    fn eviction_matches_akka_reference_values() {
        let mut w = window(3, &[100, 110, 90]);
        assert!(close(w.mean(), 100.0, 1e-5));
        assert!(close(w.variance(), 66.6666667, 1e-5));
        w.push(140);
        assert_eq!(w.len(), 3);
        assert!(close(w.mean(), 113.333333, 1e-5));
        assert!(close(w.variance(), 422.222222, 1e-5));
        w.push(80);
        assert!(close(w.mean(), 103.333333, 1e-5));
        assert!(close(w.variance(), 688.88888889, 1e-5));
    }

    #[test]
    fn a_window_that_wrapped_many_times_equals_a_fresh_one() {
        let stream: Vec<u64> = (0..10_007u64).map(|i| (i * 7919) % 3001 * 1_000_000).collect();
        let wrapped = window(16, &stream);
        let fresh = window(16, &stream[stream.len() - 16..]);
        assert_eq!((wrapped.sum, wrapped.sum_of_squares), (fresh.sum, fresh.sum_of_squares));
        assert_eq!(wrapped.variance(), fresh.variance());
    }

    #[test]
    fn variance_of_equal_nanosecond_samples_is_exactly_zero() {
        // Akka's floating-point E[x²] - mean² can come out slightly negative here.
        let w = window(1000, &vec![1_000_000_007; 1000]);
        assert_eq!(w.variance(), 0.0);
    }
}
