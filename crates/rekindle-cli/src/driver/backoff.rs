//! When to try a failed change again. Pure.
//!
//! A `--validate` that fails because of something outside the config (`nginx -t`
//! resolving an upstream while DNS is down), a webhook target restarting, a process
//! not yet started: all heal without a new change. So a failure is retried, first
//! after a second, then twice as long each time, never more than a minute apart,
//! until it succeeds or a newer change replaces it.

use std::time::Duration;

pub const FIRST: Duration = Duration::from_secs(1);
pub const MAX: Duration = Duration::from_secs(60);

/// The delay before retry number `attempt` (1 for the first retry).
pub fn delay(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    FIRST.saturating_mul(1 << doublings).min(MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        assert_eq!(delay(1), Duration::from_secs(1));
        assert_eq!(delay(2), Duration::from_secs(2));
        assert_eq!(delay(6), Duration::from_secs(32));
        assert_eq!(delay(7), MAX);
        assert_eq!(delay(u32::MAX), MAX);
    }
}
