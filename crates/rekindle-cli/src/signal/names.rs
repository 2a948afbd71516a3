//! Signal names as users write them: `HUP`, `SIGHUP`, `sighup` or `1`.

use rustix::process::Signal;

/// The signals a user may ask for by name, with the name we print.
const NAMED: &[(&str, Signal)] = &[
    ("HUP", Signal::HUP),
    ("INT", Signal::INT),
    ("QUIT", Signal::QUIT),
    ("ILL", Signal::ILL),
    ("TRAP", Signal::TRAP),
    ("ABRT", Signal::ABORT),
    ("BUS", Signal::BUS),
    ("FPE", Signal::FPE),
    ("KILL", Signal::KILL),
    ("USR1", Signal::USR1),
    ("SEGV", Signal::SEGV),
    ("USR2", Signal::USR2),
    ("PIPE", Signal::PIPE),
    ("ALRM", Signal::ALARM),
    ("TERM", Signal::TERM),
    ("STKFLT", Signal::STKFLT),
    ("CHLD", Signal::CHILD),
    ("CONT", Signal::CONT),
    ("STOP", Signal::STOP),
    ("TSTP", Signal::TSTP),
    ("TTIN", Signal::TTIN),
    ("TTOU", Signal::TTOU),
    ("URG", Signal::URG),
    ("XCPU", Signal::XCPU),
    ("XFSZ", Signal::XFSZ),
    ("VTALRM", Signal::VTALARM),
    ("PROF", Signal::PROF),
    ("WINCH", Signal::WINCH),
    ("IO", Signal::IO),
    ("PWR", Signal::POWER),
    ("SYS", Signal::SYS),
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown signal {0:?}: use a name such as HUP, SIGUSR1, TERM or a number such as 1")]
pub struct UnknownSignal(String);

/// Parses `HUP`, `SIGHUP` (any case) or a signal number.
pub fn parse(text: &str) -> Result<Signal, UnknownSignal> {
    let trimmed = text.trim();
    if let Ok(number) = trimmed.parse::<i32>() {
        return Signal::from_named_raw(number).ok_or_else(|| UnknownSignal(text.to_owned()));
    }
    let upper = trimmed.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let bare = match bare {
        // Aliases people use.
        "ABORT" | "IOT" => "ABRT",
        "CLD" => "CHLD",
        "POLL" => "IO",
        other => other,
    };
    NAMED
        .iter()
        .find(|(name, _)| *name == bare)
        .map(|(_, signal)| *signal)
        .ok_or_else(|| UnknownSignal(text.to_owned()))
}

/// Adapter for clap's `value_parser`.
pub fn parse_arg(text: &str) -> Result<Signal, String> {
    parse(text).map_err(|e| e.to_string())
}

/// `SIGHUP` for logs.
pub fn name(signal: Signal) -> String {
    match NAMED.iter().find(|(_, s)| *s == signal) {
        Some((name, _)) => format!("SIG{name}"),
        None => format!("signal {}", signal.as_raw()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_prefixes() {
        assert_eq!(parse("HUP"), Ok(Signal::HUP));
        assert_eq!(parse("SIGHUP"), Ok(Signal::HUP));
        assert_eq!(parse("sigusr1"), Ok(Signal::USR1));
        assert_eq!(parse("1"), Ok(Signal::HUP));
        assert_eq!(parse("15"), Ok(Signal::TERM));
        assert_eq!(parse("SIGABORT"), Ok(Signal::ABORT));
    }

    #[test]
    fn rejects_unknown() {
        assert!(parse("HUPP").is_err());
        assert!(parse("0").is_err());
        assert!(parse("999").is_err());
        assert!(parse("").is_err());
    }

    /// Found by fuzzing: `4` was accepted but logged as "signal 4", and
    /// `SIGILL` was refused. Every signal a number may name has a name too.
    #[test]
    fn every_signal_accepted_by_number_has_a_name_that_parses_back() {
        let mut named = 0;
        for number in 1..=64 {
            let Ok(signal) = parse(&number.to_string()) else {
                continue;
            };
            let printed = name(signal);
            assert!(printed.starts_with("SIG"), "{number} prints as {printed:?}");
            assert_eq!(parse(&printed), Ok(signal), "{printed}");
            named += 1;
        }
        assert_eq!(named, 31, "signals 1 to 31, without the real-time ones");
    }

    #[test]
    fn prints_names() {
        assert_eq!(name(Signal::HUP), "SIGHUP");
        assert_eq!(name(Signal::USR2), "SIGUSR2");
    }
}
