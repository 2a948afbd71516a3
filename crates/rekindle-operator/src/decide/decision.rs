//! Whether a change to one source rolls one workload: Reloader's decision order.
//!
//! The steps, first match wins (the numbers are COMPAT.md's):
//! 1. the workload's kind is in `--ignored-workload-types` → skip;
//! 2. the source says `ignore: "true"` → skip;
//! 3. (the rules are read, with the pod-template fallback: [`WorkloadRules`]);
//! 4. the source's name is in the workload's exclude list for its kind → skip;
//! 5. an item of the named list matches the whole name → reload, named;
//! 6. `search: "true"` on the workload and `match: "true"` on the source → reload, auto;
//! 7. auto or typed auto is true, or both are unset and `--auto-reload-all` → reload, auto;
//! 8. otherwise → skip.
//!
//! Whether the workload references the source at all is not decided here: a named
//! decision rolls even without a reference, an auto one needs it (the container
//! choice), which is the caller's knowledge.

use std::collections::BTreeSet;
use std::fmt;

use super::annotations::{AutoSetting, SourceFlags, WorkloadRules};
use crate::model::{SourceId, SourceKind, WorkloadKind};

/// The operator-wide settings the decision depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecideSettings {
    /// `--auto-reload-all`: a workload with neither auto annotation set reloads on
    /// every source it references.
    pub auto_reload_all: bool,
    /// `--ignored-workload-types`, already validated (Reloader accepts only `jobs`
    /// and `cronjobs`).
    pub ignored_workload_types: BTreeSet<WorkloadKind>,
}

/// Why a workload rolls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The source's name is in the workload's named list. The workload rolls even if
    /// no container references the source (then the first container is used).
    Named,
    /// Auto, typed auto, `--auto-reload-all`, or search and match. The workload
    /// rolls only if a container references the source. (Reloader reports a search
    /// match as an auto reload too.)
    Auto,
}

/// Which step refused.
///
/// Reloader counts none of these in `reloader_skipped_total` (its
/// `ignored_or_not_selected` reason counts events from ignored or unselected
/// namespaces), and logs them at debug level only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Step 1: `--ignored-workload-types` names the workload's kind.
    IgnoredWorkloadType,
    /// Step 2: the source carries the ignore annotation.
    SourceIgnored,
    /// Step 4: the workload's exclude list for the source's kind names it.
    Excluded,
    /// Step 8: no named item, search match or auto setting selects the source.
    NotSelected,
}

impl SkipReason {
    /// A short stable text for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::IgnoredWorkloadType => "workload type ignored",
            SkipReason::SourceIgnored => "source has the ignore annotation",
            SkipReason::Excluded => "source excluded by the workload",
            SkipReason::NotSelected => "source not selected by the workload",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome for one (workload, source) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Reload(Trigger),
    Skip(SkipReason),
}

impl Decision {
    /// Whether the workload rolls.
    pub fn is_reload(self) -> bool {
        matches!(self, Decision::Reload(_))
    }
}

/// Decides whether a change to `source` rolls a workload of kind `workload` with
/// `rules`. The source's namespace is not looked at: the caller only pairs a
/// source with workloads of its own namespace.
pub fn decide(
    workload: WorkloadKind,
    rules: &WorkloadRules,
    source: &SourceId,
    flags: SourceFlags,
    settings: &DecideSettings,
) -> Decision {
    if settings.ignored_workload_types.contains(&workload) {
        return Decision::Skip(SkipReason::IgnoredWorkloadType);
    }
    if flags.ignore {
        return Decision::Skip(SkipReason::SourceIgnored);
    }
    let rules = rules.for_kind(source.kind);
    if rules.is_excluded(&source.name) {
        return Decision::Skip(SkipReason::Excluded);
    }
    if rules.named_matches(&source.name) {
        return Decision::Reload(Trigger::Named);
    }
    if rules.search() && flags.matched {
        return Decision::Reload(Trigger::Auto);
    }
    match rules.auto() {
        AutoSetting::Enabled => Decision::Reload(Trigger::Auto),
        AutoSetting::Unset if settings.auto_reload_all => Decision::Reload(Trigger::Auto),
        AutoSetting::Unset | AutoSetting::Disabled => Decision::Skip(SkipReason::NotSelected),
    }
}

/// Whether the workload has a usable named list for `kind`: such a workload can be
/// rolled by a source it does not reference, so the index must consider it for every
/// source of that kind in its namespace, not only for the ones it references.
pub fn needs_named_scan(rules: &WorkloadRules, kind: SourceKind) -> bool {
    rules.for_kind(kind).has_named()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::annotations::AnnotationNames;
    use crate::decide::annotations::tests::mk_annotations;

    const CM: SourceKind = SourceKind::ConfigMap;
    const SECRET: SourceKind = SourceKind::Secret;
    const SPC: SourceKind = SourceKind::SecretProviderClass;
    const DEPLOY: WorkloadKind = WorkloadKind::Deployment;

    const NAMED: Decision = Decision::Reload(Trigger::Named);
    const AUTO: Decision = Decision::Reload(Trigger::Auto);
    const NOT_SELECTED: Decision = Decision::Skip(SkipReason::NotSelected);

    fn mk_rules(metadata: &[(&str, &str)]) -> WorkloadRules {
        mk_rules_with_pod(metadata, &[])
    }

    fn mk_rules_with_pod(metadata: &[(&str, &str)], pod: &[(&str, &str)]) -> WorkloadRules {
        WorkloadRules::parse(
            &mk_annotations(metadata),
            &mk_annotations(pod),
            &AnnotationNames::default(),
        )
    }

    fn mk_source(kind: SourceKind, name: &str) -> SourceId {
        SourceId::new(kind, "default", name)
    }

    fn mk_settings(auto_reload_all: bool, ignored: &[WorkloadKind]) -> DecideSettings {
        DecideSettings {
            auto_reload_all,
            ignored_workload_types: ignored.iter().copied().collect(),
        }
    }

    const MATCHED: SourceFlags = SourceFlags {
        ignore: false,
        matched: true,
    };
    const IGNORED: SourceFlags = SourceFlags {
        ignore: true,
        matched: false,
    };
    const PLAIN: SourceFlags = SourceFlags {
        ignore: false,
        matched: false,
    };

    /// Decides for a Deployment and a ConfigMap with default settings.
    fn decide_cm(rules: &WorkloadRules, name: &str, flags: SourceFlags) -> Decision {
        decide(
            DEPLOY,
            rules,
            &mk_source(CM, name),
            flags,
            &DecideSettings::default(),
        )
    }

    #[test]
    fn step1_ignored_workload_types_skip_their_kinds_only() {
        let rules = mk_rules(&[("reloader.stakater.com/auto", "true")]);
        let settings = mk_settings(false, &[WorkloadKind::Job, WorkloadKind::CronJob]);
        let source = mk_source(CM, "app-config");
        for kind in [WorkloadKind::Job, WorkloadKind::CronJob] {
            assert_eq!(
                decide(kind, &rules, &source, PLAIN, &settings),
                Decision::Skip(SkipReason::IgnoredWorkloadType),
                "{kind}"
            );
        }
        for kind in [
            WorkloadKind::Deployment,
            WorkloadKind::DaemonSet,
            WorkloadKind::StatefulSet,
            WorkloadKind::Rollout,
        ] {
            assert_eq!(
                decide(kind, &rules, &source, PLAIN, &settings),
                AUTO,
                "{kind}"
            );
        }
        let only_jobs = mk_settings(false, &[WorkloadKind::Job]);
        assert_eq!(
            decide(WorkloadKind::CronJob, &rules, &source, PLAIN, &only_jobs),
            AUTO
        );
    }

    #[test]
    fn step1_comes_before_a_named_match() {
        let rules = mk_rules(&[("configmap.reloader.stakater.com/reload", "app-config")]);
        let settings = mk_settings(false, &[WorkloadKind::Job]);
        assert_eq!(
            decide(
                WorkloadKind::Job,
                &rules,
                &mk_source(CM, "app-config"),
                PLAIN,
                &settings
            ),
            Decision::Skip(SkipReason::IgnoredWorkloadType)
        );
    }

    #[test]
    fn step2_an_ignored_source_never_rolls() {
        let named = mk_rules(&[("configmap.reloader.stakater.com/reload", "app-config")]);
        assert_eq!(
            decide_cm(&named, "app-config", IGNORED),
            Decision::Skip(SkipReason::SourceIgnored)
        );
        let auto = mk_rules(&[("reloader.stakater.com/auto", "true")]);
        assert_eq!(
            decide_cm(&auto, "app-config", IGNORED),
            Decision::Skip(SkipReason::SourceIgnored)
        );
        // Ignore wins over a search match too.
        let search = mk_rules(&[("reloader.stakater.com/search", "true")]);
        let both = SourceFlags {
            ignore: true,
            matched: true,
        };
        assert_eq!(
            decide_cm(&search, "app-config", both),
            Decision::Skip(SkipReason::SourceIgnored)
        );
        // And over --auto-reload-all.
        assert_eq!(
            decide(
                DEPLOY,
                &mk_rules(&[]),
                &mk_source(CM, "app-config"),
                IGNORED,
                &mk_settings(true, &[])
            ),
            Decision::Skip(SkipReason::SourceIgnored)
        );
    }

    #[test]
    fn step4_exclude_wins_over_named_search_and_auto() {
        let rules = mk_rules(&[
            (
                "configmaps.exclude.reloader.stakater.com/reload",
                "app-config",
            ),
            ("configmap.reloader.stakater.com/reload", "app-.*"),
            ("reloader.stakater.com/search", "true"),
            ("reloader.stakater.com/auto", "true"),
        ]);
        assert_eq!(
            decide_cm(&rules, "app-config", MATCHED),
            Decision::Skip(SkipReason::Excluded)
        );
        assert_eq!(decide_cm(&rules, "app-other", PLAIN), NAMED);
    }

    #[test]
    fn step4_exclude_is_per_kind() {
        let rules = mk_rules(&[
            ("secrets.exclude.reloader.stakater.com/reload", "shared"),
            ("reloader.stakater.com/auto", "true"),
        ]);
        let settings = DecideSettings::default();
        assert_eq!(
            decide(
                DEPLOY,
                &rules,
                &mk_source(SECRET, "shared"),
                PLAIN,
                &settings
            ),
            Decision::Skip(SkipReason::Excluded)
        );
        assert_eq!(
            decide(DEPLOY, &rules, &mk_source(CM, "shared"), PLAIN, &settings),
            AUTO
        );
    }

    #[test]
    fn step4_a_regex_looking_exclude_item_is_literal() {
        let rules = mk_rules(&[
            ("configmaps.exclude.reloader.stakater.com/reload", "app-.*"),
            ("reloader.stakater.com/auto", "true"),
        ]);
        assert_eq!(decide_cm(&rules, "app-config", PLAIN), AUTO);
        assert_eq!(
            decide_cm(&rules, "app-.*", PLAIN),
            Decision::Skip(SkipReason::Excluded)
        );
    }

    #[test]
    fn step4_exclude_is_read_from_metadata_even_when_rules_come_from_the_pod() {
        let rules = mk_rules_with_pod(
            &[(
                "configmaps.exclude.reloader.stakater.com/reload",
                "app-config",
            )],
            &[("reloader.stakater.com/auto", "true")],
        );
        assert_eq!(
            decide_cm(&rules, "app-config", PLAIN),
            Decision::Skip(SkipReason::Excluded)
        );
        assert_eq!(decide_cm(&rules, "other", PLAIN), AUTO);
    }

    #[test]
    fn step5_named_is_a_whole_name_regex_match() {
        let rules = mk_rules(&[("configmap.reloader.stakater.com/reload", "app-.*,db")]);
        assert_eq!(decide_cm(&rules, "app-x", PLAIN), NAMED);
        assert_eq!(decide_cm(&rules, "xapp-x", PLAIN), NOT_SELECTED);
        assert_eq!(decide_cm(&rules, "db", PLAIN), NAMED);
        assert_eq!(decide_cm(&rules, "db2", PLAIN), NOT_SELECTED);
    }

    #[test]
    fn step5_named_comes_before_auto() {
        // A named match is reported as named even when auto would also select it:
        // the difference decides whether an unreferenced source still rolls.
        let rules = mk_rules(&[
            ("configmap.reloader.stakater.com/reload", "app-config"),
            ("reloader.stakater.com/auto", "true"),
            ("reloader.stakater.com/search", "true"),
        ]);
        assert_eq!(decide_cm(&rules, "app-config", MATCHED), NAMED);
        assert_eq!(decide_cm(&rules, "other", PLAIN), AUTO);
    }

    #[test]
    fn step5_named_list_applies_to_its_kind_only() {
        let rules = mk_rules(&[("secret.reloader.stakater.com/reload", "app-config")]);
        assert_eq!(decide_cm(&rules, "app-config", PLAIN), NOT_SELECTED);
        assert_eq!(
            decide(
                DEPLOY,
                &rules,
                &mk_source(SECRET, "app-config"),
                PLAIN,
                &DecideSettings::default()
            ),
            NAMED
        );
    }

    #[test]
    fn step5_spc_named_list() {
        let rules = mk_rules(&[(
            "secretproviderclass.reloader.stakater.com/reload",
            "vault-.*",
        )]);
        assert_eq!(
            decide(
                DEPLOY,
                &rules,
                &mk_source(SPC, "vault-db"),
                PLAIN,
                &DecideSettings::default()
            ),
            NAMED
        );
    }

    #[test]
    fn step5_invalid_items_are_skipped_and_valid_ones_still_trigger() {
        let rules = mk_rules(&[("configmap.reloader.stakater.com/reload", "bad(,app-config")]);
        assert_eq!(rules.invalid_patterns().len(), 1);
        assert_eq!(decide_cm(&rules, "app-config", PLAIN), NAMED);
        assert_eq!(decide_cm(&rules, "bad(", PLAIN), NOT_SELECTED);
    }

    #[test]
    fn step6_search_needs_both_exactly_true() {
        let search = mk_rules(&[("reloader.stakater.com/search", "true")]);
        assert_eq!(decide_cm(&search, "app-config", MATCHED), AUTO);
        assert_eq!(decide_cm(&search, "app-config", PLAIN), NOT_SELECTED);
        let search_not_exact = mk_rules(&[("reloader.stakater.com/search", "True")]);
        assert_eq!(
            decide_cm(&search_not_exact, "app-config", MATCHED),
            NOT_SELECTED
        );
        // Without search on the workload, match on the source does nothing.
        assert_eq!(
            decide_cm(&mk_rules(&[]), "app-config", MATCHED),
            NOT_SELECTED
        );
    }

    #[test]
    fn step6_search_comes_before_an_explicit_auto_false() {
        let rules = mk_rules(&[
            ("reloader.stakater.com/search", "true"),
            ("reloader.stakater.com/auto", "false"),
        ]);
        assert_eq!(decide_cm(&rules, "app-config", MATCHED), AUTO);
        assert_eq!(decide_cm(&rules, "app-config", PLAIN), NOT_SELECTED);
    }

    #[test]
    fn step7_auto_and_typed_auto() {
        let cases: &[(&[(&str, &str)], Decision)] = &[
            (&[("reloader.stakater.com/auto", "true")], AUTO),
            (&[("reloader.stakater.com/auto", "1")], AUTO),
            (&[("reloader.stakater.com/auto", "false")], NOT_SELECTED),
            (&[("reloader.stakater.com/auto", "yes")], NOT_SELECTED),
            (&[("configmap.reloader.stakater.com/auto", "true")], AUTO),
            (
                &[
                    ("reloader.stakater.com/auto", "false"),
                    ("configmap.reloader.stakater.com/auto", "true"),
                ],
                AUTO,
            ),
            (
                &[
                    ("reloader.stakater.com/auto", "true"),
                    ("configmap.reloader.stakater.com/auto", "false"),
                ],
                AUTO,
            ),
            // Typed auto for another kind does not apply to a ConfigMap.
            (
                &[("secret.reloader.stakater.com/auto", "true")],
                NOT_SELECTED,
            ),
            (&[], NOT_SELECTED),
        ];
        for (metadata, expected) in cases {
            assert_eq!(
                decide_cm(&mk_rules(metadata), "app-config", PLAIN),
                *expected,
                "{metadata:?}"
            );
        }
    }

    #[test]
    fn step7_auto_reload_all_applies_only_when_both_autos_are_unset() {
        let all = mk_settings(true, &[]);
        let run = |metadata: &[(&str, &str)], kind: SourceKind| {
            decide(
                DEPLOY,
                &mk_rules(metadata),
                &mk_source(kind, "app-config"),
                PLAIN,
                &all,
            )
        };
        assert_eq!(run(&[], CM), AUTO);
        assert_eq!(run(&[("team", "a")], CM), AUTO);
        // An explicit false opts out.
        assert_eq!(
            run(&[("reloader.stakater.com/auto", "false")], CM),
            NOT_SELECTED
        );
        // So does a value that is not a bool.
        assert_eq!(
            run(&[("reloader.stakater.com/auto", "nope")], CM),
            NOT_SELECTED
        );
        // An empty value counts as unset.
        assert_eq!(run(&[("reloader.stakater.com/auto", "")], CM), AUTO);
        // A typed false opts out for its kind only.
        let typed_off = [("configmap.reloader.stakater.com/auto", "false")];
        assert_eq!(run(&typed_off, CM), NOT_SELECTED);
        assert_eq!(run(&typed_off, SECRET), AUTO);
        // Without the flag, nothing is selected by default.
        assert_eq!(decide_cm(&mk_rules(&[]), "app-config", PLAIN), NOT_SELECTED);
    }

    #[test]
    fn step7_auto_reload_all_sees_an_explicit_false_on_the_pod_template() {
        let rules = mk_rules_with_pod(&[], &[("reloader.stakater.com/auto", "false")]);
        assert_eq!(
            decide(
                DEPLOY,
                &rules,
                &mk_source(CM, "app-config"),
                PLAIN,
                &mk_settings(true, &[])
            ),
            NOT_SELECTED
        );
    }

    #[test]
    fn step3_rules_come_from_the_pod_template_only_without_metadata_rule_keys() {
        let pod = [("reloader.stakater.com/auto", "true")];
        assert_eq!(
            decide_cm(&mk_rules_with_pod(&[], &pod), "app-config", PLAIN),
            AUTO
        );
        // Any rule key on metadata, even for another purpose, hides the pod's.
        let metadata = [("reloader.stakater.com/search", "true")];
        assert_eq!(
            decide_cm(&mk_rules_with_pod(&metadata, &pod), "app-config", PLAIN),
            NOT_SELECTED
        );
        // A Secret key on metadata does not hide the pod's rules for ConfigMaps.
        let metadata = [("secret.reloader.stakater.com/reload", "db")];
        assert_eq!(
            decide_cm(&mk_rules_with_pod(&metadata, &pod), "app-config", PLAIN),
            AUTO
        );
    }

    #[test]
    fn named_scan_is_needed_for_a_usable_named_list_of_that_kind() {
        let rules = mk_rules(&[("configmap.reloader.stakater.com/reload", "app-config")]);
        assert!(needs_named_scan(&rules, CM));
        assert!(!needs_named_scan(&rules, SECRET));
        assert!(!needs_named_scan(&rules, SPC));
        // Auto alone never rolls an unreferenced source.
        assert!(!needs_named_scan(
            &mk_rules(&[("reloader.stakater.com/auto", "true")]),
            CM
        ));
        // A list of only invalid or empty items names nothing.
        assert!(!needs_named_scan(
            &mk_rules(&[("configmap.reloader.stakater.com/reload", "bad(, ,")]),
            CM
        ));
        // A list on the pod template counts when it is the one read.
        assert!(needs_named_scan(
            &mk_rules_with_pod(&[], &[("secret.reloader.stakater.com/reload", "db")]),
            SECRET
        ));
    }
}
