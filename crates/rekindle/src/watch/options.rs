//! Tuning for a watcher, and the ranges that keep it from spinning or sleeping forever.

use std::time::Duration;

use crate::read::ReadLimits;

/// Tuning for a [`DirWatcher`](super::DirWatcher).
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// How long a plain directory (no `..data`) must be free of events before it is read,
    /// so that a writer replacing several files non-atomically is seen once, finished.
    /// Kubelet swaps do not wait: the `..data` rename marks them complete. At most 1 min.
    pub quiet_period: Duration,
    /// The safety net: how often the directory is re-read even when no event came.
    /// From 100 ms to 7 days.
    pub rescan_interval: Duration,
    /// How often the directory is read when inotify cannot be used, and how often a
    /// missing directory is looked for. From 10 ms to 1 day.
    pub poll_interval: Duration,
    /// Poll instead of using inotify (for filesystems where inotify sees nothing, such as
    /// some network mounts).
    pub force_polling: bool,
    /// Bounds on what one read of the directory may take (bytes, entries).
    pub limits: ReadLimits,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            quiet_period: Duration::from_millis(100),
            rescan_interval: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            force_polling: false,
            limits: ReadLimits::default(),
        }
    }
}

/// A [`WatchOptions`] field out of its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("watch option `{field}` {problem}")]
pub struct InvalidOptions {
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong with its value.
    pub problem: String,
}

/// The accepted range of each duration, with why its bounds matter.
const RANGES: [(&str, Duration, Duration); 3] = [
    // A zero quiet period is allowed: read at the first event.
    ("quiet_period", Duration::ZERO, Duration::from_secs(60)),
    // Below this, the "safety net" becomes a busy loop re-reading the directory.
    (
        "rescan_interval",
        Duration::from_millis(100),
        Duration::from_secs(7 * 24 * 3600),
    ),
    (
        "poll_interval",
        Duration::from_millis(10),
        Duration::from_secs(24 * 3600),
    ),
];

impl WatchOptions {
    /// Checks every field against its documented range. [`DirWatcher::spawn`] calls this,
    /// so a zero interval is refused at start instead of spinning a core.
    ///
    /// [`DirWatcher::spawn`]: super::DirWatcher::spawn
    pub fn validate(&self) -> Result<(), InvalidOptions> {
        let values = [self.quiet_period, self.rescan_interval, self.poll_interval];
        for ((field, min, max), value) in RANGES.into_iter().zip(values) {
            if value < min || value > max {
                return Err(InvalidOptions {
                    field,
                    problem: format!("is {value:?}; it must be from {min:?} to {max:?}"),
                });
            }
        }
        if self.limits.max_volume_bytes == 0 {
            return Err(InvalidOptions {
                field: "limits.max_volume_bytes",
                problem: "is 0; every read would fail".into(),
            });
        }
        if self.limits.max_entries == 0 {
            return Err(InvalidOptions {
                field: "limits.max_entries",
                problem: "is 0; every read would fail".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(WatchOptions::default().validate(), Ok(()));
    }

    #[test]
    fn zero_and_absurd_intervals_are_refused_by_name() {
        let zero_rescan = WatchOptions {
            rescan_interval: Duration::ZERO,
            ..WatchOptions::default()
        };
        let err = zero_rescan.validate().expect_err("zero rescan");
        assert_eq!(err.field, "rescan_interval");
        assert!(err.to_string().contains("must be from 100ms"), "{err}");

        let zero_poll = WatchOptions {
            poll_interval: Duration::ZERO,
            ..WatchOptions::default()
        };
        assert_eq!(
            zero_poll.validate().expect_err("zero poll").field,
            "poll_interval"
        );

        // Far enough in the future that `Instant + interval` would overflow.
        let forever = WatchOptions {
            rescan_interval: Duration::MAX,
            ..WatchOptions::default()
        };
        assert_eq!(
            forever.validate().expect_err("huge").field,
            "rescan_interval"
        );

        let no_bytes = WatchOptions {
            limits: ReadLimits {
                max_volume_bytes: 0,
                ..ReadLimits::default()
            },
            ..WatchOptions::default()
        };
        assert_eq!(
            no_bytes.validate().expect_err("zero limit").field,
            "limits.max_volume_bytes"
        );
    }

    #[test]
    fn zero_quiet_period_is_allowed() {
        let immediate = WatchOptions {
            quiet_period: Duration::ZERO,
            ..WatchOptions::default()
        };
        assert_eq!(immediate.validate(), Ok(()));
    }
}
