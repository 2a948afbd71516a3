//! The three command-line dialects: native subcommands and flags,
//! configmap-reload's Go-style flags, and config-reloader-sidecar's
//! environment. Arguments are built from the flags the parsers know (read
//! from the parsers themselves), typical values and free bytes.
//!
//! Checks that parsing never panics (clap's own consistency checks included:
//! fuzz builds keep debug assertions) and that the Go-style rewrite keeps
//! every argument, changing a flag only by the extra `-` clap needs.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rekindle_cli::fuzzing;

#[derive(Arbitrary, Debug)]
struct Input {
    args: Vec<Arg>,
    env: Vec<(u8, Value)>,
}

#[derive(Arbitrary, Debug)]
enum Arg {
    /// A subcommand or flag the parsers know.
    Word(u16),
    /// A known flag with `=value`.
    WithValue(u16, Value),
    Value(Value),
    /// Anything, not necessarily UTF-8.
    Bytes(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Value {
    Known(u8),
    Free(String),
}

const VALUES: &[&str] = &[
    "/etc/config",
    "http://127.0.0.1:9533/-/reload",
    "http://u:p@[::1]:80/x",
    "HUP",
    "SIGUSR1",
    "15",
    "10s",
    "0",
    "1m30s",
    "64Mi",
    "nginx",
    "true",
    "false",
    "POST",
    "200",
    "json",
    "debug",
    "--",
    "-",
    "",
    ":9533",
    "/metrics",
    "app.yaml=app",
    "a,b",
    "sh",
    "-c",
    "1e3",
];

/// The variables the command line reads through its `env` argument: those of
/// config-reloader-sidecar's mode. (clap reads its own `REKINDLE_LOG_*` defaults
/// from the process environment, which a fuzz target should not change.)
const ENV: &[&str] = &["CONFIG_DIR", "PROCESS_NAME", "RELOAD_SIGNAL", "VERBOSE"];

fn words() -> &'static [String] {
    static WORDS: OnceLock<Vec<String>> = OnceLock::new();
    WORDS.get_or_init(fuzzing::known_words)
}

impl Value {
    fn render(&self) -> String {
        match self {
            Value::Known(i) => VALUES[usize::from(*i) % VALUES.len()].to_owned(),
            Value::Free(s) => s.clone(),
        }
    }
}

fuzz_target!(|input: Input| {
    let words = words();
    let args: Vec<OsString> = input
        .args
        .iter()
        .take(12)
        .map(|arg| match arg {
            Arg::Word(i) => OsString::from(&words[usize::from(*i) % words.len()]),
            Arg::WithValue(i, v) => OsString::from(format!(
                "{}={}",
                words[usize::from(*i) % words.len()],
                v.render()
            )),
            Arg::Value(v) => OsString::from(v.render()),
            Arg::Bytes(b) => OsString::from_vec(b.clone()),
        })
        .collect();
    let env: Vec<(String, String)> = input
        .env
        .iter()
        .take(6)
        .map(|(k, v)| (ENV[usize::from(*k) % ENV.len()].to_owned(), v.render()))
        .collect();

    let _ = fuzzing::parse_command_line(&args, &env);

    let rewritten = fuzzing::go_style_to_clap(&args);
    assert_eq!(rewritten.len(), args.len());
    for (before, after) in args.iter().zip(&rewritten) {
        let (b, a) = (before.as_bytes(), after.as_bytes());
        assert!(
            a == b || (a.len() == b.len() + 1 && a[0] == b'-' && &a[1..] == b),
            "{before:?} became {after:?}"
        );
    }
});
