//! The fixed-timeout detector: suspect a peer once `timeout` has passed since its last
//! heartbeat. This is Akka's `DeadlineFailureDetector` (`akka-remote`), whose deadline is
//! `heartbeat-interval + acceptable-heartbeat-pause` and which reports a peer unavailable
//! when `now >= last heartbeat + deadline`.

use super::{ConfigError, Detector};
use crate::time::{Span, Time};

/// Configuration of a [`FixedTimeout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedTimeoutConfig {
    /// Time since the last heartbeat after which the peer is suspected. Must be positive.
    ///
    /// Default 4 s: the deadline Akka's `DeadlineFailureDetector` would use with the
    /// cluster failure detector's defaults, `heartbeat-interval = 1 s` plus
    /// `acceptable-heartbeat-pause = 3 s`.
    pub timeout: Span,
}

impl Default for FixedTimeoutConfig {
    fn default() -> Self {
        FixedTimeoutConfig { timeout: Span::from_secs(4) }
    }
}

impl FixedTimeoutConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.timeout == Span::ZERO {
            return Err(ConfigError::new("fixed-timeout", "timeout", "must be greater than 0"));
        }
        Ok(())
    }
}

/// Suspects the peer from `last heartbeat + timeout` until the next heartbeat.
///
/// [`level`](Detector::level) is the elapsed time over the timeout; the detector suspects
/// exactly when the level is at least 1.
#[derive(Clone, Debug)]
pub struct FixedTimeout {
    config: FixedTimeoutConfig,
    last: Option<Time>,
}

impl FixedTimeout {
    /// # Panics
    /// If the configuration is invalid; see [`FixedTimeout::try_new`].
    pub fn new(config: FixedTimeoutConfig) -> Self {
        Self::try_new(config).unwrap_or_else(|err| panic!("{err}"))
    }

    pub fn try_new(config: FixedTimeoutConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(FixedTimeout { config, last: None })
    }

    pub fn config(&self) -> &FixedTimeoutConfig {
        &self.config
    }
}

impl Detector for FixedTimeout {
    fn heartbeat(&mut self, at: Time) {
        if let Some(last) = self.last {
            assert!(at >= last, "heartbeat at {at:?} before the previous one at {last:?}");
        }
        self.last = Some(at);
    }

    fn suspect_at(&self) -> Option<Time> {
        self.last.map(|last| last + self.config.timeout)
    }

    fn level(&self, now: Time) -> f64 {
        self.last.map_or(0.0, |last| (now - last).as_nanos() as f64 / self.config.timeout.as_nanos() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Time {
        Time::ZERO + Span::from_millis(millis)
    }

    #[test]
    fn suspects_from_last_heartbeat_plus_timeout() {
        let mut d = FixedTimeout::new(FixedTimeoutConfig { timeout: Span::from_millis(350) });
        assert_eq!(d.suspect_at(), None);
        assert!(!d.suspects(ms(10_000)), "trusted before the first heartbeat");
        assert_eq!(d.level(ms(10_000)), 0.0);
        d.heartbeat(ms(100));
        assert_eq!(d.suspect_at(), Some(ms(450)));
        assert!(!d.suspects(Time::from_nanos(ms(450).as_nanos() - 1)));
        assert!(d.suspects(ms(450)));
        assert_eq!(d.level(ms(275)), 0.5);
        assert_eq!(d.level(ms(450)), 1.0);
        d.heartbeat(ms(500));
        assert!(!d.suspects(ms(500)), "a heartbeat restores trust");
        assert_eq!(d.suspect_at(), Some(ms(850)));
    }

    #[test]
    fn default_is_akka_cluster_deadline() {
        assert_eq!(FixedTimeoutConfig::default().timeout, Span::from_secs(4));
    }

    #[test]
    fn zero_timeout_is_rejected() {
        let err = FixedTimeout::try_new(FixedTimeoutConfig { timeout: Span::ZERO }).unwrap_err();
        assert_eq!(err.field, "timeout");
    }
}
