//! The detector's timing: one place for its defaults and for the lease they imply.
//!
//! Owns the arithmetic that makes a lease end before anyone may take over; it must not hold
//! state.

use std::time::Duration;

/// How the detector is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseOptions {
    /// A beat goes to every member this often.
    pub interval: Duration,
    /// A member silent this long on the listener's clock is promised about (`T`).
    pub suspect_after: Duration,
    /// How far two members' monotonic clocks may run apart in rate, in parts per million.
    pub drift_ppm: u32,
    /// What the owner needs to let go once its lease says so (unplumbing, with room for
    /// scheduling): taken off its lease.
    pub margin: Duration,
    /// A planted bug, for the tests that show the checker catches one. `None` in use.
    #[doc(hidden)]
    pub flaw: Option<Flaw>,
}

/// Mistakes planted on purpose: each must make the safety check fail.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// The owner counts its lease from when an acknowledgement arrived, not from when the
    /// beat it acknowledges was sent.
    LeaseFromArrival,
    /// A member that promised still acknowledges.
    AckAfterPromise,
    /// A member promises after half of `suspect_after`.
    PromiseEarly,
}

/// 5 ms between beats.
pub const INTERVAL_DEFAULT: Duration = Duration::from_millis(5);
/// 40 ms of silence (8 beats missed).
pub const SUSPECT_AFTER_DEFAULT: Duration = Duration::from_millis(40);
/// 1,000 ppm: twice what NTP may slew a clock by.
pub const DRIFT_PPM_DEFAULT: u32 = 1_000;
/// 5 ms to let go.
pub const MARGIN_DEFAULT: Duration = Duration::from_millis(5);

impl Default for LeaseOptions {
    fn default() -> Self {
        Self {
            interval: INTERVAL_DEFAULT,
            suspect_after: SUSPECT_AFTER_DEFAULT,
            drift_ppm: DRIFT_PPM_DEFAULT,
            margin: MARGIN_DEFAULT,
            flaw: None,
        }
    }
}

impl LeaseOptions {
    /// The defaults with this beat interval and `suspect_after`, in milliseconds, as the
    /// command lines give them.
    pub fn from_millis(interval_ms: u64, suspect_after_ms: u64) -> Self {
        Self {
            interval: Duration::from_millis(interval_ms),
            suspect_after: Duration::from_millis(suspect_after_ms),
            ..Self::default()
        }
    }

    /// [`INTERVAL_DEFAULT`] in milliseconds, for command lines.
    pub const INTERVAL_DEFAULT_MS: u64 = INTERVAL_DEFAULT.as_millis() as u64;
    /// [`SUSPECT_AFTER_DEFAULT`] in milliseconds, for command lines.
    pub const SUSPECT_AFTER_DEFAULT_MS: u64 = SUSPECT_AFTER_DEFAULT.as_millis() as u64;

    /// How long an acknowledged beat keeps its sender's lease, from its send time on the
    /// sender's clock: `T / (1 + drift)² - margin`, rounded down.
    pub fn lease(&self) -> Duration {
        let scale = 1_000_000u128 + u128::from(self.drift_ppm);
        let nanos = self.suspect_after.as_nanos() * 1_000_000 / scale * 1_000_000 / scale;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)).saturating_sub(self.margin)
    }

    /// Why these options cannot work, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.interval.is_zero() {
            return Err("the beat interval must be above zero".into());
        }
        if self.lease() <= self.interval * 2 {
            return Err(format!(
                "a lease of {:?} (from suspect_after {:?}, drift {} ppm, margin {:?}) must be \
                 more than two beat intervals ({:?}), or an owner loses it between two beats",
                self.lease(),
                self.suspect_after,
                self.drift_ppm,
                self.margin,
                self.interval
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_ends_before_a_drifting_listener_can_promise() {
        let options = LeaseOptions::default();
        let lease = options.lease();
        // 40 ms / 1.001² = 39.92 ms, less the 5 ms margin.
        assert_eq!(lease.as_micros(), 34_920);
        // The owner's slowest clock stretches it by (1 + drift), the listener's fastest
        // shortens T by as much: the first must still end before the second.
        let stretched = lease.as_nanos() * 1_001 / 1_000;
        let shortened = options.suspect_after.as_nanos() * 1_000 / 1_001;
        assert!(stretched + options.margin.as_nanos() <= shortened);
        assert!(options.check().is_ok());
    }

    #[test]
    fn a_lease_shorter_than_two_beats_is_refused() {
        let options = LeaseOptions {
            interval: Duration::from_millis(20),
            ..LeaseOptions::default()
        };
        assert!(options
            .check()
            .is_err_and(|e| e.contains("two beat intervals")));
    }
}
