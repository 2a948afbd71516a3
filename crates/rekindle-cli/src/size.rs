//! Byte sizes on the command line, written as Kubernetes writes quantities:
//! `64Mi`, `512Ki`, `1Gi`, `10M`, or a bare number of bytes.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SizeError {
    #[error(
        "invalid size {0:?}: expected a number of bytes or one with a unit, such as 512Ki, 64Mi, 1Gi"
    )]
    Invalid(String),
    #[error("{flag} must be from {min} to {max} bytes (got {got})")]
    OutOfRange {
        flag: &'static str,
        min: u64,
        max: u64,
        got: u64,
    },
}

const UNITS: [(&str, u64); 6] = [
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("K", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
];

pub fn parse(text: &str) -> Result<u64, SizeError> {
    let invalid = || SizeError::Invalid(text.to_owned());
    let trimmed = text.trim();
    let (number, scale) = UNITS
        .iter()
        .find_map(|(unit, scale)| trimmed.strip_suffix(unit).map(|n| (n, *scale)))
        .unwrap_or((trimmed, 1));
    let number: u64 = number.parse().map_err(|_| invalid())?;
    number.checked_mul(scale).ok_or_else(invalid)
}

/// `--max-volume-size`: above the 1 MiB Kubernetes allows per object (a projected
/// volume joins several), below what would hurt a sidecar's memory.
pub fn parse_volume_size(text: &str) -> Result<u64, String> {
    const MIN: u64 = 1 << 10;
    const MAX: u64 = 4 << 30;
    let got = parse(text).map_err(|e| e.to_string())?;
    if (MIN..=MAX).contains(&got) {
        Ok(got)
    } else {
        Err(SizeError::OutOfRange {
            flag: "--max-volume-size",
            min: MIN,
            max: MAX,
            got,
        }
        .to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bare_bytes() {
        assert_eq!(parse("64Mi"), Ok(64 << 20));
        assert_eq!(parse("512Ki"), Ok(512 << 10));
        assert_eq!(parse("1Gi"), Ok(1 << 30));
        assert_eq!(parse("10M"), Ok(10_000_000));
        assert_eq!(parse("4096"), Ok(4096));
        assert!(parse("1.5Mi").is_err());
        assert!(parse("Mi").is_err());
        assert!(parse("99999999999999999999Gi").is_err());
    }

    #[test]
    fn volume_size_is_bounded() {
        assert!(
            parse_volume_size("0")
                .unwrap_err()
                .contains("--max-volume-size")
        );
        assert!(parse_volume_size("8Gi").is_err());
        assert_eq!(parse_volume_size("1Mi"), Ok(1 << 20));
    }
}
