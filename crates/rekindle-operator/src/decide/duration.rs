//! Go's `time.ParseDuration`, for `deployment.reloader.stakater.com/pause-period`.
//!
//! Reloader hands the annotation's text to Go's parser, so a value its users already
//! wrote (`5m`, `1h30m`, `1.5s`, `300ms`, `.5s`, `1µs`) must mean here exactly what it
//! meant there, rounding of long fractions included. The one deliberate difference:
//! Go accepts a negative duration (and Reloader would then resume at once); a pause
//! period cannot be negative, so here it is an error.

use std::time::Duration;

/// Why a duration text was refused. Each variant names the text, so the caller's log
/// line says which annotation value to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not of the form `[-+]?([0-9]*(\.[0-9]*)?[a-zµμ]+)+`, or too large for Go's
    /// `time.Duration` (about 292 years).
    #[error("invalid duration {0:?}")]
    Invalid(String),
    /// A number without a unit, as in `5` (only a bare `0` may omit it).
    #[error("missing unit in duration {0:?}")]
    MissingUnit(String),
    /// A unit other than `ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`.
    #[error("unknown unit {unit:?} in duration {text:?}")]
    UnknownUnit { unit: String, text: String },
    /// A well-formed but negative duration, such as `-5m`.
    #[error("negative duration {0:?}")]
    Negative(String),
}

/// The largest magnitude Go's parser accumulates: `1 << 63` nanoseconds.
const LIMIT: u64 = 1 << 63;

/// Parses `text` as Go's `time.ParseDuration` does and returns it as a
/// [`Duration`]. Negative durations are refused ([`DurationError::Negative`]);
/// `-0s` is zero, not negative.
pub fn parse_go_duration(text: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(text.to_owned());

    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    // Go's special case: a bare zero needs no unit.
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }

    let mut total: u64 = 0;
    while !rest.is_empty() {
        let first = rest.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }

        let (whole, after_whole) = leading_int(rest).ok_or_else(invalid)?;
        let has_whole = after_whole.len() != rest.len();
        rest = after_whole;

        let mut fraction = 0_u64;
        let mut scale = 1.0_f64;
        let mut has_fraction = false;
        if let Some(after_dot) = rest.strip_prefix('.') {
            let (f, s, after_fraction) = leading_fraction(after_dot);
            has_fraction = after_fraction.len() != after_dot.len();
            (fraction, scale, rest) = (f, s, after_fraction);
        }
        if !has_whole && !has_fraction {
            return Err(invalid());
        }

        // The unit runs to the next digit or dot; both are ASCII, so the cut is
        // on a char boundary even after a multi-byte `µ`.
        let unit_len = rest
            .bytes()
            .position(|b| b == b'.' || b.is_ascii_digit())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(text.to_owned()));
        }
        let (unit_text, after_unit) = rest.split_at(unit_len);
        rest = after_unit;
        let unit = unit_nanos(unit_text).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit_text.to_owned(),
            text: text.to_owned(),
        })?;

        if whole > LIMIT / unit {
            return Err(invalid());
        }
        let mut value = whole * unit;
        if fraction > 0 {
            // Go computes the fractional part in float64 (exact to the nanosecond
            // for fractions of an hour) and truncates; do the same so that long
            // fractions round identically. The product is below `unit`, so the
            // cast cannot saturate.
            value += (fraction as f64 * (unit as f64 / scale)) as u64;
            if value > LIMIT {
                return Err(invalid());
            }
        }
        total += value;
        if total > LIMIT {
            return Err(invalid());
        }
    }

    if negative {
        return if total == 0 {
            Ok(Duration::ZERO)
        } else {
            Err(DurationError::Negative(text.to_owned()))
        };
    }
    if total > LIMIT - 1 {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(total))
}

/// Go's `leadingInt`: the leading `[0-9]*` and the rest, or `None` past `1 << 63`.
fn leading_int(s: &str) -> Option<(u64, &str)> {
    let mut x: u64 = 0;
    let end = s
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    for b in s[..end].bytes() {
        if x > LIMIT / 10 {
            return None;
        }
        x = x * 10 + u64::from(b - b'0');
        if x > LIMIT {
            return None;
        }
    }
    Some((x, &s[end..]))
}

/// Go's `leadingFraction`: the leading `[0-9]*` as a numerator and its scale (a
/// power of ten). Digits past what fits are consumed but ignored, never an error.
fn leading_fraction(s: &str) -> (u64, f64, &str) {
    let mut x: u64 = 0;
    let mut scale = 1.0_f64;
    let mut overflow = false;
    let end = s
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    for b in s[..end].bytes() {
        if overflow {
            continue;
        }
        if x > (LIMIT - 1) / 10 {
            overflow = true;
            continue;
        }
        let y = x * 10 + u64::from(b - b'0');
        if y > LIMIT {
            overflow = true;
            continue;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale, &s[end..])
}

/// Nanoseconds per unit, for the units Go knows (both micro signs included).
fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(n: u64) -> Result<Duration, DurationError> {
        Ok(Duration::from_nanos(n))
    }

    fn invalid(text: &str) -> Result<Duration, DurationError> {
        Err(DurationError::Invalid(text.to_owned()))
    }

    /// Every expected value below was printed by Go 1.19's `time.ParseDuration`
    /// for the same input.
    #[test]
    fn accepts_what_go_accepts_with_the_same_value() {
        let cases: &[(&str, u64)] = &[
            ("5m", 300_000_000_000),
            ("1h30m", 5_400_000_000_000),
            ("1.5s", 1_500_000_000),
            ("300ms", 300_000_000),
            ("0", 0),
            ("+0", 0),
            ("0s", 0),
            ("+5s", 5_000_000_000),
            ("1.5h", 5_400_000_000_000),
            (".5s", 500_000_000),
            ("5.s", 5_000_000_000),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("1\u{b5}s", 1_000),
            ("1\u{3bc}s", 1_000),
            ("2us", 2_000),
            ("3ns", 3),
            ("9223372036854775807ns", 9_223_372_036_854_775_807),
            ("2562047h", 9_223_369_200_000_000_000),
            ("0.000000001s", 1),
            ("0.0000000001s", 0),
            ("1.0000000001h", 3_600_000_000_360),
            // Go's float64 fraction rounds this up to exactly 2 s.
            ("1.999999999999999999999s", 2_000_000_000),
            ("00005m", 300_000_000_000),
            ("3m.5s", 180_500_000_000),
            ("5m0.5s", 300_500_000_000),
            ("0.1h", 360_000_000_000),
        ];
        for (text, nanos) in cases {
            assert_eq!(parse_go_duration(text), ns(*nanos), "{text:?}");
        }
    }

    #[test]
    fn refuses_what_go_refuses_with_the_same_kind_of_error() {
        for text in [
            "",
            "-",
            "+",
            "s",
            ".s",
            " 5s",
            "9223372036854775808ns",
            "2562048h",
            "100000000000000000000s",
            // The whole part fits, its product with the unit would not fit in u64.
            "6000000h",
        ] {
            assert_eq!(parse_go_duration(text), invalid(text), "{text:?}");
        }
        for text in ["5", "1.2.3s"] {
            assert_eq!(
                parse_go_duration(text),
                Err(DurationError::MissingUnit(text.to_owned())),
                "{text:?}"
            );
        }
        for (text, unit) in [
            ("5x", "x"),
            ("5 s", " s"),
            ("5s ", "s "),
            ("5S", "S"),
            ("1d", "d"),
            ("1h-2m", "h-"),
        ] {
            assert_eq!(
                parse_go_duration(text),
                Err(DurationError::UnknownUnit {
                    unit: unit.to_owned(),
                    text: text.to_owned()
                }),
                "{text:?}"
            );
        }
    }

    #[test]
    fn negative_durations_are_refused_but_negative_zero_is_zero() {
        assert_eq!(
            parse_go_duration("-5s"),
            Err(DurationError::Negative("-5s".to_owned()))
        );
        assert_eq!(
            parse_go_duration("-1h30m"),
            Err(DurationError::Negative("-1h30m".to_owned()))
        );
        assert_eq!(parse_go_duration("-0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("-0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn errors_name_the_text() {
        let message = parse_go_duration("5 minutes")
            .expect_err("not a Go duration")
            .to_string();
        assert!(message.contains("\"5 minutes\""), "{message}");
        let message = parse_go_duration("-2m").expect_err("negative").to_string();
        assert!(message.contains("\"-2m\""), "{message}");
    }
}
