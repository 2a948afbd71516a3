//! Durations on the command line, written the way Kubernetes manifests and Go
//! tools write them: `10s`, `500ms`, `1m30s`, `2h`. A bare number means seconds,
//! because that is what people type when they do not think about units.
//!
//! Every duration flag also has bounds ([`Bounds`]): a zero rescan interval
//! would spin the watcher, a zero webhook timeout would fail every call, and a
//! duration of centuries is a typo that would overflow the timers downstream.

use std::ffi::OsStr;
use std::fmt::{self, Write as _};
use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DurationError {
    /// Nothing (or only spaces) was given.
    #[error("empty duration")]
    Empty,
    /// Not a number with a unit, a negative number, or an unknown unit.
    #[error("invalid duration {0:?}: expected a number with a unit, such as 500ms, 10s, 1m30s")]
    Invalid(String),
    /// More than `Duration` can hold (about 585 billion years).
    #[error("duration {0:?} is too large")]
    Overflow(String),
    /// Below the flag's minimum; `why` says what such a value would do.
    #[error("must be at least {} (got {}): {why}", Human(*min), Human(*got))]
    TooShort {
        min: Duration,
        got: Duration,
        why: &'static str,
    },
    /// Above the flag's maximum.
    #[error("must be at most {} (got {})", Human(*max), Human(*got))]
    TooLong { max: Duration, got: Duration },
}

/// Units, in nanoseconds. `µs` is Go's spelling, `us` the one people can type.
const UNITS: &[(&str, u64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Parses `10s`, `250ms`, `1m30s`, `1.5s`, `2h`, `100us` or a bare number of seconds.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let invalid = || DurationError::Invalid(text.to_owned());
    let is_number = |c: char| c.is_ascii_digit() || c == '.';
    if text.chars().all(is_number) {
        return to_duration(nanos(text, 1_000_000_000).ok_or_else(invalid)?, text);
    }
    // Whole nanoseconds in a u128: sums of parts cannot overflow it, and the
    // integer parts stay exact (`10ms` is 10ms, not 9.999999ms).
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !is_number(c)).ok_or_else(invalid)?;
        let (number, after) = rest.split_at_checked(number_len).ok_or_else(invalid)?;
        let unit_len = after.find(is_number).unwrap_or(after.len());
        let (unit, after) = after.split_at_checked(unit_len).ok_or_else(invalid)?;
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(invalid)?;
        let part = nanos(number, scale).ok_or_else(invalid)?;
        total = total
            .checked_add(part)
            .ok_or_else(|| DurationError::Overflow(text.to_owned()))?;
        rest = after;
    }
    to_duration(total, text)
}

/// `number` (digits, at most one `.`) times `scale` nanoseconds, computed in
/// exact decimal: `0.1s` is 100ms, not what a binary float makes of it, and
/// integers wider than 64 bits are not rounded. A fraction below a nanosecond
/// is dropped, as Go's `time.ParseDuration` drops it. A value too large for
/// `u128` saturates, so that it is reported as an overflow, not as garbage.
fn nanos(number: &str, scale: u64) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let scale = u128::from(scale);
    let mut total: u128 = 0;
    for digit in whole.bytes() {
        total = total
            .saturating_mul(10)
            .saturating_add(u128::from(digit - b'0'));
    }
    total = total.saturating_mul(scale);
    // floor(0.fraction × scale), exactly, whatever the number of digits: from the
    // last digit to the first, `part` is floor(0.rest × scale), and
    // floor((d × scale + floor(x)) / 10) = floor((d × scale + x) / 10). `part`
    // stays below `scale`, so nothing overflows.
    let part = fraction.bytes().rev().fold(0u128, |part, digit| {
        (u128::from(digit - b'0') * scale + part) / 10
    });
    Some(total.saturating_add(part))
}

fn to_duration(total_nanos: u128, text: &str) -> Result<Duration, DurationError> {
    let overflow = || DurationError::Overflow(text.to_owned());
    let secs = u64::try_from(total_nanos / NANOS_PER_SEC).map_err(|_| overflow())?;
    let subsec = u32::try_from(total_nanos % NANOS_PER_SEC).map_err(|_| overflow())?;
    Ok(Duration::new(secs, subsec))
}

/// A duration written back the way [`parse`] reads it: `0s`, `10ms`, `1m30s`, `24h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Human(pub Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() {
            return f.write_str("0s");
        }
        let secs = self.0.as_secs();
        let nanos = u64::from(self.0.subsec_nanos());
        let mut out = String::new();
        for (value, unit) in [
            (secs / 3600, "h"),
            (secs / 60 % 60, "m"),
            (secs % 60, "s"),
            (nanos / 1_000_000, "ms"),
            (nanos / 1_000 % 1_000, "us"),
            (nanos % 1_000, "ns"),
        ] {
            if value > 0 {
                write!(out, "{value}{unit}")?;
            }
        }
        f.write_str(&out)
    }
}

/// The range a duration flag accepts (both ends included), and why the lower
/// end is there. Also its clap value parser, so that each flag gets its own
/// bounds and the message names the flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: Duration,
    pub max: Duration,
    /// What a shorter value would do, for the error message.
    pub why_min: &'static str,
}

const SECOND: Duration = Duration::from_secs(1);
const TEN_MS: Duration = Duration::from_millis(10);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// `--rescan-interval`: a safety net that reads whole directories; below a
/// second it is no longer a safety net but a busy loop.
pub const RESCAN_INTERVAL: Bounds = Bounds {
    min: SECOND,
    max: DAY,
    why_min: "a zero or tiny interval would re-read the directories continuously",
};

/// `--webhook-timeout`: 10ms is already tight for a connect on loopback.
pub const WEBHOOK_TIMEOUT: Bounds = Bounds {
    min: TEN_MS,
    max: HOUR,
    why_min: "a shorter deadline would fail every call before the webhook can answer",
};

/// `--webhook-backoff`: the delay before the first retry.
pub const WEBHOOK_BACKOFF: Bounds = Bounds {
    min: TEN_MS,
    max: HOUR,
    why_min: "a shorter delay would retry in a tight loop",
};

/// `--exec-timeout` and `--validate-timeout`: a day covers any sane command.
pub const COMMAND_TIMEOUT: Bounds = Bounds {
    min: TEN_MS,
    max: DAY,
    why_min: "a shorter deadline would kill the command before it can run",
};

/// `--stop-timeout`: zero is meaningful (SIGKILL at once), so there is no floor.
pub const STOP_TIMEOUT: Bounds = Bounds {
    min: Duration::ZERO,
    max: HOUR,
    why_min: "",
};

impl Bounds {
    /// Parses `text` and checks it against the bounds.
    pub fn parse(&self, text: &str) -> Result<Duration, DurationError> {
        let got = parse(text)?;
        if got < self.min {
            return Err(DurationError::TooShort {
                min: self.min,
                got,
                why: self.why_min,
            });
        }
        if got > self.max {
            return Err(DurationError::TooLong { max: self.max, got });
        }
        Ok(got)
    }
}

impl clap::builder::TypedValueParser for Bounds {
    type Value = Duration;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Duration, clap::Error> {
        let flag = arg.map_or_else(
            || "the duration".to_owned(),
            |a| match a.get_long() {
                Some(long) => format!("--{long}"),
                None => a.get_id().to_string(),
            },
        );
        let text = value.to_string_lossy();
        let message = match self.parse(&text) {
            Ok(duration) => return Ok(duration),
            Err(e @ (DurationError::TooShort { .. } | DurationError::TooLong { .. })) => {
                format!("{flag} {e}")
            }
            Err(e) => format!("invalid value for {flag}: {e}"),
        };
        Err(cmd
            .clone()
            .error(clap::error::ErrorKind::ValueValidation, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("100us"), Ok(Duration::from_micros(100)));
    }

    #[test]
    fn bare_number_is_seconds() {
        assert_eq!(parse("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse("0.25"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert!(parse("ten seconds").is_err());
        assert!(parse("10x").is_err());
        assert!(parse("s").is_err());
        assert!(parse("-1s").is_err());
    }

    /// Adding up the parts of `1e19s1e19s` overflowed `Duration` and panicked.
    #[test]
    fn overflow_is_an_error() {
        assert!(parse("10000000000000000000s10000000000000000000s").is_err());
        assert!(parse("1e300").is_err());
        assert!(parse("99999999999999999999h").is_err());
    }

    #[test]
    fn integer_parts_are_exact() {
        assert_eq!(parse("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse("3ms"), Ok(Duration::from_millis(3)));
        assert_eq!(parse("1h1m1s1ms1us1ns"), Ok(Duration::new(3661, 1_001_001)));
        assert_eq!(parse("100\u{b5}s"), Ok(Duration::from_micros(100)));
        assert_eq!(parse(".5s"), Ok(Duration::from_millis(500)));
        assert!(parse("1.2.3s").is_err());
        assert!(parse(".s").is_err());
        assert!(parse("1e3").is_err());
    }

    /// Found by fuzzing: integers beyond `u64` and fractions went through
    /// `f64`, so `18446744073709551617ns` lost its last digit and `0.3s`
    /// depended on binary rounding.
    #[test]
    fn integers_beyond_u64_and_fractions_are_exact() {
        assert_eq!(
            parse("18446744073709551617ns"),
            Ok(Duration::new(18_446_744_073, 709_551_617))
        );
        assert_eq!(parse("0.3s"), Ok(Duration::from_millis(300)));
        assert_eq!(parse("0.1h"), Ok(Duration::from_secs(360)));
        assert_eq!(parse("1.000000001s"), Ok(Duration::new(1, 1)));
        assert_eq!(parse("1.0000000019s"), Ok(Duration::new(1, 1)));
        assert_eq!(parse("1.5ns"), Ok(Duration::from_nanos(1)));
        assert_eq!(
            parse("0.00000000000000000000000000001h"),
            Ok(Duration::ZERO)
        );
        assert_eq!(parse("5."), Ok(Duration::from_secs(5)));
        // Digits far down the fraction still carry into the nanoseconds: this is
        // 4.0000000032ns.
        assert_eq!(
            parse("0.000000000001111111112h"),
            Ok(Duration::from_nanos(4))
        );
        assert_eq!(
            parse("123456789.123456789s"),
            Ok(Duration::new(123_456_789, 123_456_789))
        );
        let huge = "9".repeat(60);
        assert!(matches!(
            parse(&format!("{huge}ns")),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(parse(&huge), Err(DurationError::Overflow(_))));
    }

    #[test]
    fn human_round_trips() {
        for (d, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(10), "10ms"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(24 * 3600), "24h"),
            (Duration::from_millis(1500), "1s500ms"),
            (Duration::new(3661, 1_001_001), "1h1m1s1ms1us1ns"),
        ] {
            assert_eq!(Human(d).to_string(), text);
            assert_eq!(parse(text), Ok(d));
        }
    }

    #[test]
    fn bounds() {
        assert_eq!(
            RESCAN_INTERVAL.parse("0"),
            Err(DurationError::TooShort {
                min: Duration::from_secs(1),
                got: Duration::ZERO,
                why: RESCAN_INTERVAL.why_min,
            })
        );
        assert_eq!(
            RESCAN_INTERVAL.parse("0").map_err(|e| e.to_string()),
            Err(
                "must be at least 1s (got 0s): a zero or tiny interval would re-read the directories continuously"
                    .to_owned()
            )
        );
        assert_eq!(
            WEBHOOK_TIMEOUT
                .parse("99999999999h")
                .map_err(|e| e.to_string()),
            Err("must be at most 1h (got 99999999999h)".to_owned())
        );
        assert_eq!(RESCAN_INTERVAL.parse("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(
            RESCAN_INTERVAL.parse("24h"),
            Ok(Duration::from_secs(86_400))
        );
        assert_eq!(STOP_TIMEOUT.parse("0"), Ok(Duration::ZERO));
        assert!(STOP_TIMEOUT.parse("61m").is_err());
        assert!(WEBHOOK_BACKOFF.parse("9ms").is_err());
        assert!(COMMAND_TIMEOUT.parse("10ms").is_ok());
        assert!(matches!(
            COMMAND_TIMEOUT.parse("10000000000000000000s10000000000000000000s"),
            Err(DurationError::Overflow(_))
        ));
    }
}
