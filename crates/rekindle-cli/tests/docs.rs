//! The documentation cannot drift from the binary: the reference page holds the
//! binary's own `--help` text, and every `rekindle` command shown anywhere in the docs
//! uses only flags that its subcommand has.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use rekindle_testenv::docs::{check_help_blocks, commands_of, flags_of, markdown_files, repo_root};

/// `rekindle ARGS --help`, as a user sees it.
fn help(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_rekindle"))
        .args(args)
        .arg("--help")
        .env_remove("REKINDLE_LOG_FORMAT")
        .env_remove("REKINDLE_LOG_LEVEL")
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    assert!(output.status.success(), "rekindle {args:?} --help failed");
    String::from_utf8(output.stdout).unwrap()
}

/// The subcommands of this build.
fn subcommands() -> Vec<&'static str> {
    let mut all = vec!["watch", "run", "doctor"];
    if cfg!(feature = "kube") {
        all.extend(["sync", "status"]);
    }
    all
}

#[test]
fn the_reference_page_holds_the_binarys_own_help() {
    let page = repo_root().join("docs/reference/rekindle.md");
    let checked = check_help_blocks(&page, help);
    for sub in subcommands() {
        let command = format!("rekindle {sub}");
        assert!(
            checked.contains(&command),
            "{} has no help block for `{command}`",
            page.display()
        );
    }
}

#[test]
fn documented_commands_use_only_real_flags() {
    let subs = subcommands();
    let mut seen = 0;
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for command in commands_of("rekindle", &text) {
            let Some(first) = command.first() else {
                continue;
            };
            let help = if subs.contains(&first.as_str()) {
                help(&[first.as_str()])
            } else if first.starts_with("--") {
                // configmap-reload's flags, without a subcommand.
                help(&["--volume-dir", "/dev/null"])
            } else {
                // A subcommand this build does not have, or a path argument.
                assert!(
                    !["watch", "run", "sync", "doctor", "status"].contains(&first.as_str())
                        || !cfg!(feature = "kube"),
                    "{}: unknown subcommand in `rekindle {}`",
                    file.display(),
                    command.join(" ")
                );
                continue;
            };
            for flag in flags_of(&command) {
                assert!(
                    help.contains(&format!("--{flag}")),
                    "{}: `rekindle {}` uses --{flag}, which `rekindle {first} --help` does not list",
                    file.display(),
                    command.join(" ")
                );
            }
            seen += 1;
        }
    }
    assert!(seen > 10, "only {seen} documented commands found");
}
