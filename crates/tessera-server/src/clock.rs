//! Time as a parameter (A4). Every decision that depends on the time of day (token expiry,
//! refresh grace windows, key timetables, revocation windows, rate-limit windows) reads it from
//! a [`Clock`] handed to the component, never from the system directly: production passes
//! [`SystemClock`], tests pass a [`ManualClock`] and move it forward instead of sleeping.
//!
//! `clippy.toml` disallows `SystemTime::now` and `Instant::now` everywhere else in the server
//! (this module is the one allowed reader of the wall clock), so a new flow cannot quietly read
//! the system time and become untestable.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Unix time in milliseconds.
    fn now_millis(&self) -> i64;

    /// Unix time in whole seconds (what token claims carry).
    fn now(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }
}

/// The clock every component of one server shares.
pub type SharedClock = Arc<dyn Clock>;

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// The system clock, shared.
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods, reason = "the one place that reads the wall clock")]
    fn now_millis(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A clock that moves only when told to: it starts at the system time and [`ManualClock::advance`]
/// moves it forward. For tests of expiry, grace windows and timetables without sleeping.
#[derive(Debug)]
pub struct ManualClock {
    millis: AtomicI64,
}

impl ManualClock {
    /// A manual clock set to the current system time.
    pub fn starting_now() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            millis: AtomicI64::new(SystemClock.now_millis()),
        })
    }

    /// A manual clock set to `unix_millis`.
    pub fn at(unix_millis: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            millis: AtomicI64::new(unix_millis),
        })
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let millis = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.millis.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> i64 {
        self.millis.load(Ordering::SeqCst)
    }
}

/// Measures how long something took, for metrics and logs (not for decisions): a monotonic
/// stopwatch, so a clock step does not produce negative durations.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(std::time::Instant);

impl Stopwatch {
    /// Starts measuring.
    #[allow(clippy::disallowed_methods, reason = "durations for metrics, not decisions")]
    pub fn start() -> Stopwatch {
        Stopwatch(std::time::Instant::now())
    }

    /// Time since [`Stopwatch::start`].
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        // Arrange
        let clock = ManualClock::at(1_000_500);
        // Act / Assert
        assert_eq!(clock.now(), 1_000);
        clock.advance(Duration::from_millis(600));
        assert_eq!(clock.now_millis(), 1_001_100);
        assert_eq!(clock.now(), 1_001);
    }

    #[test]
    fn seconds_round_down_before_the_epoch_too() {
        assert_eq!(ManualClock::at(-1).now(), -1);
    }
}
