//! `rekindle doctor`: finds the traps that make config changes fail silently — a
//! `subPath` mount, environment variables from the config, a process the sidecar cannot
//! see or signal, inotify limits — and says for each what to change.
//!
//! Everything is read from this process's view (`/proc/self/mountinfo`, `/proc`, its
//! environment): run it where rekindle runs, `kubectl exec POD -c rekindle -- rekindle
//! doctor DIR`. The checks are pure functions of what was read (`mountinfo`, `volume`,
//! `inotify`, `process`, `env`); this file gathers, decides the exit code and renders.

mod env;
mod inotify;
mod mountinfo;
mod problem;
mod process;
mod volume;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use problem::Problem;
use process::Target;
use volume::DirReport;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// `rekindle doctor`'s arguments.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Directories to examine: mounted ConfigMap/Secret volumes, `rekindle sync`
    /// directories, plain directories (or a single mounted file).
    #[arg(value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Check that processes with this name are visible and may be signalled, as
    /// `rekindle watch --process-name` would find them.
    #[arg(long, value_name = "NAME", conflicts_with = "pid")]
    pub process_name: Option<String>,
    /// Check that this PID is visible and may be signalled.
    #[arg(long, value_name = "PID")]
    pub pid: Option<i32>,
    /// `text` for people, `json` (one document) for scripts.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

pub const ABOUT: &str = "Find why config changes would not arrive: subPath mounts, env vars, process visibility, inotify limits";

pub const LONG_ABOUT: &str = "\
Examine what rekindle would watch, from where it runs, and say what would keep a
config change from arriving, with the change that fixes it:

  - each DIR: a kubelet volume (ConfigMap, Secret, projected: ..data is swapped
    atomically), a plain directory, or a subPath mount that will never be updated;
    its digest (what `rekindle watch` reports) and key names, never values;
  - inotify: the per-user limits and what this UID uses of them;
  - --process-name / --pid: whether the process is visible (a shared PID
    namespace) and may be signalled (same UID or CAP_KILL);
  - the environment: variables named like keys of the watched config, which
    were set once at start and never change.

Exit code: 0 when nothing is wrong, 1 when a problem was found, 2 on a usage
error. Run it in the pod: kubectl exec POD -c rekindle -- rekindle doctor DIR";

pub const EXAMPLES: &str = "\
Examples:
  rekindle doctor /etc/nginx/conf.d --process-name nginx
  rekindle doctor /etc/app /etc/app-secret --format json";

/// Everything doctor found.
#[derive(Debug)]
struct Findings {
    dirs: Vec<DirReport>,
    inotify: inotify::Inotify,
    process: Option<(Target, Vec<process::Found>)>,
    env_from_config: Vec<String>,
    problems: Vec<Problem>,
}

/// Runs the checks and prints the report; the exit code says whether a problem was found.
pub fn run(args: DoctorArgs) -> ExitCode {
    let findings = gather(&args);
    match args.format {
        Format::Text => print!("{}", render_text(&findings)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&render_json(&findings)).unwrap_or_default()
        ),
    }
    if findings.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn gather(args: &DoctorArgs) -> Findings {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| mountinfo::parse(&t))
        .unwrap_or_default();
    let mut problems = Vec::new();
    let mut dirs = Vec::new();
    for dir in &args.dirs {
        let (report, found) = volume::examine(dir, &mounts);
        problems.extend(found);
        dirs.push(report);
    }
    let inotify = inotify::gather();
    problems.extend(inotify.problems(args.dirs.len() as u64));
    let target = match (&args.process_name, args.pid) {
        (Some(name), _) => Some(Target::Name(name.clone())),
        (None, Some(pid)) => Some(Target::Pid(pid)),
        (None, None) => None,
    };
    let process = target.map(|target| {
        let (found, found_problems) = process::examine(&target);
        problems.extend(found_problems);
        (target, found)
    });
    let keys: BTreeSet<String> = dirs.iter().flat_map(|d| d.keys.iter().cloned()).collect();
    let names = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok());
    let env_from_config = env::from_config(names, &keys);
    problems.extend(env::problem(&env_from_config));
    Findings {
        dirs,
        inotify,
        process,
        env_from_config,
        problems,
    }
}

fn render_text(f: &Findings) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for dir in &f.dirs {
        let _ = writeln!(out, "{}: {}", dir.path.display(), dir.kind.describe());
        if let Some(digest) = &dir.digest {
            let _ = writeln!(
                out,
                "  digest {digest}\n  {} key{}: {}",
                dir.keys.len(),
                if dir.keys.len() == 1 { "" } else { "s" },
                dir.keys.join(", ")
            );
        }
    }
    let limit = |v: Option<u64>| v.map_or("?".to_owned(), |v| v.to_string());
    let _ = writeln!(
        out,
        "inotify: UID {} uses {} of {} instances and {} of {} watches",
        f.inotify.uid,
        f.inotify.instances,
        limit(f.inotify.max_user_instances),
        f.inotify.watches,
        limit(f.inotify.max_user_watches)
    );
    if let Some((target, found)) = &f.process {
        let what = match target {
            Target::Name(name) => format!("process {name:?}"),
            Target::Pid(pid) => format!("PID {pid}"),
        };
        if found.is_empty() {
            let _ = writeln!(out, "{what}: not visible");
        }
        for p in found {
            let _ = writeln!(
                out,
                "{what}: PID {} (UID {}), {}",
                p.pid,
                p.uid.map_or("?".to_owned(), |u| u.to_string()),
                if p.signallable {
                    "may be signalled"
                } else {
                    "may NOT be signalled"
                }
            );
        }
    }
    if f.env_from_config.is_empty() {
        let _ = writeln!(out, "environment: no variable named like a watched key");
    }
    if f.problems.is_empty() {
        let _ = writeln!(out, "\nno problem found");
    } else {
        let n = f.problems.len();
        let _ = writeln!(out, "\n{n} problem{}:", if n == 1 { "" } else { "s" });
        for p in &f.problems {
            let _ = writeln!(out, "\n[{}] {}\n  fix:", p.code, p.message);
            for line in p.fix.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    out
}

fn render_json(f: &Findings) -> Value {
    json!({
        "dirs": f.dirs.iter().map(|d| json!({
            "path": d.path,
            "kind": d.kind.code(),
            "description": d.kind.describe(),
            "digest": d.digest,
            "keys": d.keys,
        })).collect::<Vec<_>>(),
        "inotify": {
            "uid": f.inotify.uid,
            "instances": f.inotify.instances,
            "max_user_instances": f.inotify.max_user_instances,
            "watches": f.inotify.watches,
            "max_user_watches": f.inotify.max_user_watches,
        },
        "process": f.process.as_ref().map(|(target, found)| json!({
            "target": match target {
                Target::Name(name) => json!({"name": name}),
                Target::Pid(pid) => json!({"pid": pid}),
            },
            "found": found.iter().map(|p| json!({
                "pid": p.pid, "uid": p.uid, "signallable": p.signallable,
            })).collect::<Vec<_>>(),
        })),
        "environment": {"from_config": f.env_from_config},
        "problems": f.problems.iter().map(|p| json!({
            "code": p.code, "subject": p.subject, "message": p.message, "fix": p.fix,
        })).collect::<Vec<_>>(),
    })
}
