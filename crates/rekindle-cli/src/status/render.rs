//! What `rekindle status` prints: a table for people (`-o table`), JSON for scripts
//! (`-o json`), the one-line progress of `--wait`, and why pods have not converged.
//! Pure: a [`Fleet`] in, text out. Digests show as their 12-character prefix in text,
//! whole in JSON; reasons are the reports' own (one line, never a value).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rekindle::Digest;
use rekindle::fleet::{Cell, Counts, Fleet, PodView, SourceView, State};
use serde_json::{Value, json};

use super::compare::View;
use super::workload::{Use, WorkloadRef};

/// `-o`: the output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A table, one row per pod, then a summary per source.
    Table,
    /// One JSON object (see `docs/pipeline.md`).
    Json,
}

fn short(digest: Option<&Digest>) -> String {
    digest.map_or_else(|| "-".to_owned(), Digest::short)
}

/// `stale 0a1b2c3d4e5f` (the content the pod runs) or just the state.
fn cell_text(cell: Option<&Cell>) -> String {
    match cell {
        None => State::Unknown.to_string(),
        Some(cell) if cell.state == State::Stale => {
            format!("stale {}", cell.report.digest.short())
        }
        Some(cell) => cell.state.to_string(),
    }
}

/// "7 of 12 pods run configmap/app 3f2a9c4b1d0e; 5 stale", for one tracked source.
pub fn summary(source: &SourceView) -> String {
    let total = source.counts.total();
    let mut line = match &source.digest {
        Some(digest) => format!(
            "{} of {total} pods run {} {}",
            source.counts.current,
            source.source,
            digest.short()
        ),
        None => format!(
            "{} does not exist; {} of {total} pods current",
            source.source, source.counts.current
        ),
    };
    let rest = others(&source.counts);
    if !rest.is_empty() {
        let _ = write!(line, "; {rest}");
    }
    line
}

/// "5 stale, 1 rejected": the counts of every state but `current` that are not zero.
fn others(counts: &Counts) -> String {
    State::ALL
        .iter()
        .filter(|s| **s != State::Current && counts.get(**s) > 0)
        .map(|s| format!("{} {s}", counts.get(*s)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "; 1 more pod wanted (3 desired)", when pods are missing.
fn missing(view: &View) -> String {
    match (view.missing(), view.desired) {
        (0, _) | (_, None) => String::new(),
        (1, Some(desired)) => format!("; 1 more pod wanted ({desired} desired)"),
        (n, Some(desired)) => format!("; {n} more pods wanted ({desired} desired)"),
    }
}

/// The last line: converged or not, and how many pods are where.
pub fn verdict(workload: &WorkloadRef, view: &View) -> String {
    let fleet = &view.fleet;
    let counts = fleet.counts();
    let total = counts.total();
    if total == 0 {
        return format!(
            "{workload}: not converged: no running pods match its selector{}",
            missing(view)
        );
    }
    if fleet.tracked().next().is_none() {
        return format!(
            "{workload}: not converged: no pod reports a ConfigMap or Secret it mounts or \
             names (does rekindle run with --report-pod?)"
        );
    }
    if view.converged() {
        return format!("{workload}: converged: {total} of {total} pods run the current config");
    }
    let rest = others(&counts);
    format!(
        "{workload}: not converged: {} of {total} pods current{}{}",
        counts.current,
        if rest.is_empty() {
            String::new()
        } else {
            format!("; {rest}")
        },
        missing(view)
    )
}

/// One line while `--wait` waits: every tracked source's summary.
pub fn progress(workload: &WorkloadRef, view: &View) -> String {
    let summaries: Vec<String> = view.fleet.tracked().map(summary).collect();
    if summaries.is_empty() {
        return verdict(workload, view);
    }
    format!(
        "waiting for {workload}: {}{}",
        summaries.join(" | "),
        missing(view)
    )
}

/// Why one pod is not current, per tracked source it is not current with.
pub fn why_not(fleet: &Fleet, pod: &PodView) -> Vec<String> {
    if let Some(invalid) = &pod.invalid {
        return vec![format!(
            "its {} annotation is unreadable: {invalid}",
            rekindle::report::ANNOTATION
        )];
    }
    let mut out = Vec::new();
    for source in fleet.tracked() {
        let name = &source.source;
        match pod.cells.get(name) {
            None => out.push(format!("{name} unknown (not reported)")),
            Some(cell) => match cell.state {
                State::Current => {}
                State::Stale => out.push(format!(
                    "{name} stale (runs {}, current {})",
                    cell.report.digest.short(),
                    short(cell.expected.as_ref())
                )),
                State::Rejected | State::Failed | State::Unknown => {
                    let mut line = format!("{name} {} {}", cell.state, cell.report.digest.short());
                    if let Some(reason) = &cell.report.reason {
                        let _ = write!(line, ": {reason}");
                    }
                    out.push(line);
                }
            },
        }
    }
    out
}

/// `pod: why; why` for every pod that is not current, and the pods still missing.
pub fn lagging(view: &View) -> Vec<String> {
    let fleet = &view.fleet;
    let mut out: Vec<String> = fleet
        .pods
        .iter()
        .filter(|p| p.state != State::Current)
        .map(|p| {
            let why = why_not(fleet, p);
            if why.is_empty() {
                format!(
                    "{}: reports nothing about its ConfigMaps or Secrets",
                    p.name
                )
            } else {
                format!("{}: {}", p.name, why.join("; "))
            }
        })
        .collect();
    if let (n @ 1.., Some(desired)) = (view.missing(), view.desired) {
        out.push(format!(
            "{n} more pod(s) wanted: {desired} desired, {} running",
            fleet.pods.len()
        ));
    }
    out
}

/// `-o table`.
pub fn table(workload: &WorkloadRef, view: &View, declared: &BTreeMap<String, Use>) -> String {
    let fleet = &view.fleet;
    let tracked: Vec<&SourceView> = fleet.tracked().collect();
    let mut rows: Vec<Vec<String>> = vec![
        ["POD", "STATE"]
            .into_iter()
            .map(str::to_owned)
            .chain(tracked.iter().map(|s| s.source.clone()))
            .collect(),
    ];
    for pod in &fleet.pods {
        let mut row = vec![pod.name.clone(), pod.state.to_string()];
        row.extend(tracked.iter().map(|s| cell_text(pod.cells.get(&s.source))));
        rows.push(row);
    }
    let mut widths = vec![0; rows[0].len()];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}   ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }

    let mut notes = Vec::new();
    for pod in &fleet.pods {
        for (source, cell) in &pod.cells {
            if matches!(cell.state, State::Rejected | State::Failed) {
                let reason = cell.report.reason.as_deref().unwrap_or("no reason given");
                notes.push(format!(
                    "{}: {source} {} {} at {}: {reason}",
                    pod.name,
                    cell.state,
                    cell.report.digest.short(),
                    cell.report.at
                ));
            }
        }
        for unmatched in &pod.unmatched {
            notes.push(format!(
                "{}: {} not compared: {}",
                pod.name, unmatched.via, unmatched.why
            ));
        }
        if let Some(invalid) = &pod.invalid {
            notes.push(format!("{}: unreadable report: {invalid}", pod.name));
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        for note in notes {
            out.push_str(&note);
            out.push('\n');
        }
    }
    out.push('\n');
    for source in &tracked {
        out.push_str(&summary(source));
        out.push('\n');
    }
    let untracked: Vec<String> = fleet
        .sources
        .iter()
        .filter(|s| !s.tracked)
        .map(|s| match declared.get(&s.source) {
            Some(how) => format!("{} ({})", s.source, how.describe()),
            None => s.source.clone(),
        })
        .collect();
    if !untracked.is_empty() {
        let _ = writeln!(
            out,
            "not reported by any pod, so not waited for: {}",
            untracked.join(", ")
        );
    }
    out.push_str(&verdict(workload, view));
    out.push('\n');
    out
}

fn counts_json(counts: &Counts) -> Value {
    let map: serde_json::Map<String, Value> = State::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), json!(counts.get(*s))))
        .collect();
    Value::Object(map)
}

/// `-o json`: one object, digests whole.
pub fn json(
    workload: &WorkloadRef,
    namespace: &str,
    view: &View,
    declared: &BTreeMap<String, Use>,
) -> String {
    let fleet = &view.fleet;
    let hex = |d: Option<&Digest>| d.map(ToString::to_string);
    let sources: Vec<Value> = fleet
        .sources
        .iter()
        .map(|s| {
            json!({
                "source": s.source,
                "digest": hex(s.digest.as_ref()),
                "tracked": s.tracked,
                "use": declared.get(&s.source).map(|u| u.describe()),
                "pods": counts_json(&s.counts),
            })
        })
        .collect();
    let pods: Vec<Value> = fleet
        .pods
        .iter()
        .map(|p| {
            let sources: serde_json::Map<String, Value> = fleet
                .tracked()
                .map(|s| {
                    let value = match p.cells.get(&s.source) {
                        None => json!({"state": "unknown"}),
                        Some(cell) => json!({
                            "state": cell.state.as_str(),
                            "via": cell.via,
                            "digest": cell.report.digest.to_string(),
                            "expected": hex(cell.expected.as_ref()),
                            "result": cell.report.result.as_str(),
                            "at": cell.report.at,
                            "reason": cell.report.reason,
                        }),
                    };
                    (s.source.clone(), value)
                })
                .collect();
            let unmatched: Vec<Value> = p
                .unmatched
                .iter()
                .map(|u| json!({"via": u.via, "why": u.why}))
                .collect();
            json!({
                "name": p.name,
                "state": p.state.as_str(),
                "sources": sources,
                "unmatched": unmatched,
                "invalid": p.invalid,
            })
        })
        .collect();
    let value = json!({
        "workload": {"kind": workload.kind.as_str(), "name": workload.name, "namespace": namespace},
        "converged": view.converged(),
        "desiredPods": view.desired,
        "pods": counts_json(&fleet.counts()),
        "sources": sources,
        "podStates": pods,
        "lagging": lagging(view),
    });
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::compare::compare;
    use crate::status::compare::tests::{mk_contents, mk_declared, mk_pod, mk_snapshot};
    use crate::status::workload::parse_target;
    use rekindle::api::ObjectKind;
    use rekindle::report::Result as Outcome;

    fn mk_fleet() -> (View, BTreeMap<String, Use>, Digest, Digest) {
        let app = mk_snapshot(&[("LOG_LEVEL", "info")]);
        let old = mk_snapshot(&[("LOG_LEVEL", "debug")]);
        let pods = [
            mk_pod(
                "web-a",
                None,
                &[("/etc/app", *app.digest(), Outcome::Applied)],
            ),
            mk_pod(
                "web-b",
                None,
                &[("configmap/app", *old.digest(), Outcome::Applied)],
            ),
            mk_pod(
                "web-c",
                None,
                &[("/etc/app", *app.digest(), Outcome::Rejected)],
            ),
        ];
        let mut declared = mk_declared(&["configmap/app"]);
        declared.insert(
            "secret/db".into(),
            Use {
                volume: false,
                env: true,
            },
        );
        let contents = mk_contents(&[
            (ObjectKind::ConfigMap, "app", Some(app.clone())),
            (ObjectKind::Secret, "db", Some(mk_snapshot(&[("pw", "x")]))),
        ]);
        (
            View {
                fleet: compare(&pods, &declared, &contents),
                desired: Some(3),
            },
            declared,
            *app.digest(),
            *old.digest(),
        )
    }

    #[test]
    fn the_table_has_a_row_per_pod_reasons_and_a_summary() {
        let (view, declared, app, old) = mk_fleet();
        let workload = parse_target("deployment/web").expect("target");
        let text = table(&workload, &view, &declared);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("POD"), "{text}");
        assert!(lines[0].contains("configmap/app"), "{text}");
        assert!(!lines[0].contains("secret/db"), "{text}");
        assert!(
            lines[1].starts_with("web-a") && lines[1].ends_with("current"),
            "{text}"
        );
        assert!(
            lines[2].ends_with(&format!("stale {}", old.short())),
            "{text}"
        );
        assert!(lines[3].contains("rejected"), "{text}");
        assert!(
            text.contains(&format!(
                "web-c: configmap/app rejected {} at 2026-11-22T09:33:20Z: bad LOG_LEVEL",
                app.short()
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "1 of 3 pods run configmap/app {}; 1 stale, 1 rejected",
                app.short()
            )),
            "{text}"
        );
        assert!(text.contains("not waited for: secret/db (env)"), "{text}");
        assert!(
            text.ends_with(
                "deployment/web: not converged: 1 of 3 pods current; 1 stale, 1 rejected\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn json_has_every_pod_and_whole_digests() {
        let (fleet, declared, app, old) = mk_fleet();
        let workload = parse_target("deployment/web").expect("target");
        let value: Value =
            serde_json::from_str(&json(&workload, "apps", &fleet, &declared)).expect("json");
        assert_eq!(value["converged"], json!(false));
        assert_eq!(value["workload"]["namespace"], json!("apps"));
        assert_eq!(value["pods"]["stale"], json!(1));
        assert_eq!(value["sources"][0]["digest"], json!(app.to_string()));
        let b = &value["podStates"][1];
        assert_eq!(b["name"], json!("web-b"));
        assert_eq!(b["sources"]["configmap/app"]["state"], json!("stale"));
        assert_eq!(
            b["sources"]["configmap/app"]["digest"],
            json!(old.to_string())
        );
        assert_eq!(
            b["sources"]["configmap/app"]["expected"],
            json!(app.to_string())
        );
        assert_eq!(
            value["podStates"][2]["sources"]["configmap/app"]["reason"],
            json!("bad LOG_LEVEL")
        );
        assert_eq!(value["sources"][1]["tracked"], json!(false));
        assert_eq!(value["sources"][1]["use"], json!("env"));
        assert_eq!(value["lagging"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn lagging_pods_say_why() {
        let (mut view, _, app, old) = mk_fleet();
        let lines = lagging(&view);
        assert_eq!(
            lines,
            [
                format!(
                    "web-b: configmap/app stale (runs {}, current {})",
                    old.short(),
                    app.short()
                ),
                format!(
                    "web-c: configmap/app rejected {}: bad LOG_LEVEL",
                    app.short()
                ),
            ]
        );
        let workload = parse_target("deployment/web").expect("target");
        assert_eq!(
            progress(&workload, &view),
            format!(
                "waiting for deployment/web: 1 of 3 pods run configmap/app {}; 1 stale, 1 rejected",
                app.short()
            )
        );
        view.desired = Some(4);
        assert!(progress(&workload, &view).ends_with("; 1 more pod wanted (4 desired)"));
        assert_eq!(
            lagging(&view).last().map(String::as_str),
            Some("1 more pod(s) wanted: 4 desired, 3 running")
        );
    }

    #[test]
    fn no_pods_or_no_reports_say_so() {
        let workload = parse_target("deployment/web").expect("target");
        let empty = View {
            fleet: Fleet::default(),
            desired: Some(2),
        };
        assert_eq!(
            verdict(&workload, &empty),
            "deployment/web: not converged: no running pods match its selector; 2 more pods wanted (2 desired)"
        );
        let silent = View {
            fleet: compare(
                &[mk_pod("web-a", None, &[])],
                &mk_declared(&["configmap/app"]),
                &mk_contents(&[(ObjectKind::ConfigMap, "app", Some(mk_snapshot(&[])))]),
            ),
            desired: None,
        };
        assert!(verdict(&workload, &silent).contains("--report-pod"));
        assert_eq!(
            lagging(&silent),
            ["web-a: reports nothing about its ConfigMaps or Secrets"]
        );
    }
}
