//! The annotations Reloader's users write, read the way Reloader reads them.
//!
//! Three readers live here: [`AnnotationNames`] (which keys to look at, renamable
//! by Reloader's flags), [`WorkloadRules`] (what a workload asks for, parsed once
//! per workload version and cheap to query on every source event) and
//! [`SourceFlags`] (what a ConfigMap, Secret or SecretProviderClass says about
//! itself). The decision that combines them is in [`super::decision`].

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use regex::{Regex, RegexBuilder};

use crate::model::SourceKind;

/// `secretproviderclass.reloader.stakater.com/auto`. Reloader has no flag for it.
pub const SECRET_PROVIDER_CLASS_AUTO: &str = "secretproviderclass.reloader.stakater.com/auto";
/// `secretproviderclass.reloader.stakater.com/reload`. Reloader has no flag for it.
pub const SECRET_PROVIDER_CLASS_RELOAD: &str = "secretproviderclass.reloader.stakater.com/reload";
/// Exact ConfigMap names that never roll the workload. Reloader has no flag for it.
pub const CONFIGMAPS_EXCLUDE: &str = "configmaps.exclude.reloader.stakater.com/reload";
/// Exact Secret names that never roll the workload. Reloader has no flag for it.
pub const SECRETS_EXCLUDE: &str = "secrets.exclude.reloader.stakater.com/reload";
/// Exact SecretProviderClass names that never roll the workload. Reloader has no
/// flag for it.
pub const SECRET_PROVIDER_CLASSES_EXCLUDE: &str =
    "secretproviderclasses.exclude.reloader.stakater.com/reload";
/// On an Argo Rollout's metadata: `restart` asks for `spec.restartAt` instead of a
/// template update. Reloader has no flag for it.
pub const ROLLOUT_STRATEGY: &str = "reloader.stakater.com/rollout-strategy";
/// The pod-template annotation written by the `annotations` reload strategy.
/// Reloader has no flag for it.
pub const LAST_RELOADED_FROM: &str = "reloader.stakater.com/last-reloaded-from";
/// The pod-template annotation the `annotations` strategy writes next to
/// [`LAST_RELOADED_FROM`]: every source the workload rolls for, with the value each
/// had when it last rolled (`{"CONFIGMAP/app":"<marker>",…}`). `last-reloaded-from`
/// names one source, as Reloader's does; this one lets the catch-up at start see a
/// change to any of them. rekindle's own: Reloader neither writes nor reads it.
pub const RELOADED_DIGESTS: &str = "rekindle.io/reloaded-digests";

/// Every source kind, in the order [`WorkloadRules`] stores them.
const KINDS: [SourceKind; 3] = [
    SourceKind::ConfigMap,
    SourceKind::Secret,
    SourceKind::SecretProviderClass,
];

fn slot(kind: SourceKind) -> usize {
    match kind {
        SourceKind::ConfigMap => 0,
        SourceKind::Secret => 1,
        SourceKind::SecretProviderClass => 2,
    }
}

/// The annotation keys that Reloader's flags can rename, with Reloader's defaults.
///
/// Each field is filled from the flag named in its doc. The typed auto keys are
/// flags of their own, not derived from `auto`: renaming `--auto-annotation` leaves
/// `configmap.reloader.stakater.com/auto` as it was. The SecretProviderClass keys,
/// the exclude keys and the rollout strategy key cannot be renamed in Reloader and
/// are the constants of this module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationNames {
    /// `--auto-annotation` (`reloader.stakater.com/auto`): workload, any kind.
    pub auto: String,
    /// `--configmap-auto-annotation` (`configmap.reloader.stakater.com/auto`).
    pub configmap_auto: String,
    /// `--secret-auto-annotation` (`secret.reloader.stakater.com/auto`).
    pub secret_auto: String,
    /// `--configmap-annotation` (`configmap.reloader.stakater.com/reload`): the
    /// workload's named list of ConfigMaps.
    pub configmap_reload: String,
    /// `--secret-annotation` (`secret.reloader.stakater.com/reload`): the
    /// workload's named list of Secrets.
    pub secret_reload: String,
    /// `--auto-search-annotation` (`reloader.stakater.com/search`): workload.
    pub search: String,
    /// `--search-match-annotation` (`reloader.stakater.com/match`): source.
    pub search_match: String,
    /// `--ignore-annotation` (`reloader.stakater.com/ignore`): source.
    pub ignore: String,
    /// `--pause-deployment-annotation`
    /// (`deployment.reloader.stakater.com/pause-period`): Deployment metadata.
    pub pause_period: String,
    /// `--pause-deployment-time-annotation`
    /// (`deployment.reloader.stakater.com/paused-at`): written on a paused
    /// Deployment's metadata.
    pub paused_at: String,
}

impl Default for AnnotationNames {
    fn default() -> Self {
        AnnotationNames {
            auto: "reloader.stakater.com/auto".to_owned(),
            configmap_auto: "configmap.reloader.stakater.com/auto".to_owned(),
            secret_auto: "secret.reloader.stakater.com/auto".to_owned(),
            configmap_reload: "configmap.reloader.stakater.com/reload".to_owned(),
            secret_reload: "secret.reloader.stakater.com/reload".to_owned(),
            search: "reloader.stakater.com/search".to_owned(),
            search_match: "reloader.stakater.com/match".to_owned(),
            ignore: "reloader.stakater.com/ignore".to_owned(),
            pause_period: "deployment.reloader.stakater.com/pause-period".to_owned(),
            paused_at: "deployment.reloader.stakater.com/paused-at".to_owned(),
        }
    }
}

impl AnnotationNames {
    /// The typed auto key for `kind` (`configmap.reloader.stakater.com/auto`, …).
    pub fn typed_auto(&self, kind: SourceKind) -> &str {
        match kind {
            SourceKind::ConfigMap => &self.configmap_auto,
            SourceKind::Secret => &self.secret_auto,
            SourceKind::SecretProviderClass => SECRET_PROVIDER_CLASS_AUTO,
        }
    }

    /// The named-list key for `kind` (`configmap.reloader.stakater.com/reload`, …).
    pub fn reload(&self, kind: SourceKind) -> &str {
        match kind {
            SourceKind::ConfigMap => &self.configmap_reload,
            SourceKind::Secret => &self.secret_reload,
            SourceKind::SecretProviderClass => SECRET_PROVIDER_CLASS_RELOAD,
        }
    }

    /// The exclude-list key for `kind`; the same whatever the flags say.
    pub fn exclude(kind: SourceKind) -> &'static str {
        match kind {
            SourceKind::ConfigMap => CONFIGMAPS_EXCLUDE,
            SourceKind::Secret => SECRETS_EXCLUDE,
            SourceKind::SecretProviderClass => SECRET_PROVIDER_CLASSES_EXCLUDE,
        }
    }
}

/// Go's `strconv.ParseBool`: `1 t T TRUE true True` and `0 f F FALSE false False`;
/// anything else (`yes`, `tRuE`, ` true`, the empty string) is `None`.
pub fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// How Argo Rollouts are rolled, from [`ROLLOUT_STRATEGY`] on the Rollout's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RolloutStrategy {
    /// Update the pod template (the default, and the answer to any value but
    /// `restart`, as in Reloader).
    #[default]
    Rollout,
    /// Merge-patch `spec.restartAt`.
    Restart,
}

impl RolloutStrategy {
    /// Reads [`ROLLOUT_STRATEGY`] from a Rollout's metadata annotations.
    pub fn from_annotations(metadata: &BTreeMap<String, String>) -> Self {
        match metadata.get(ROLLOUT_STRATEGY).map(String::as_str) {
            Some("restart") => RolloutStrategy::Restart,
            _ => RolloutStrategy::Rollout,
        }
    }
}

/// What a ConfigMap, Secret or SecretProviderClass says about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceFlags {
    /// The ignore annotation is exactly `"true"`: this source never rolls anything.
    pub ignore: bool,
    /// The search-match annotation is exactly `"true"`: workloads with
    /// `search: "true"` roll on it.
    pub matched: bool,
}

impl SourceFlags {
    /// Reads the flags from the source's metadata annotations. Both values must be
    /// exactly `"true"` (Reloader compares strings here, it does not parse a bool).
    pub fn parse(annotations: &BTreeMap<String, String>, names: &AnnotationNames) -> Self {
        let is_true = |key: &str| annotations.get(key).is_some_and(|v| v == "true");
        SourceFlags {
            ignore: is_true(&names.ignore),
            matched: is_true(&names.search_match),
        }
    }
}

/// An item of a named list that does not compile as a regex. The item is skipped;
/// the rest of the list still works.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid regex {item:?} in annotation {annotation:?}: {}", one_line(.error))]
pub struct InvalidPattern {
    /// The annotation key the list was read from.
    pub annotation: String,
    /// The trimmed item.
    pub item: String,
    /// Why `^item$` did not compile.
    pub error: regex::Error,
}

/// A regex error on one line. The parser's own text draws a caret under the
/// pattern over several lines, which splits a log record; its last line says
/// what is wrong (`error: unclosed character class`), and the item is quoted
/// next to it anyway.
fn one_line(error: &regex::Error) -> String {
    let text = error.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    last.trim().trim_start_matches("error: ").to_owned()
}

/// The workload's auto setting for one source kind, from the plain and the typed
/// auto annotations together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AutoSetting {
    /// Neither annotation has a value (absent or empty): `--auto-reload-all`
    /// decides.
    #[default]
    Unset,
    /// One of them parses as true: roll on every referenced source of the kind.
    Enabled,
    /// At least one has a value and neither parses as true. This includes values
    /// that are not booleans at all (`yes`): Reloader treats a parse error as
    /// false, and the non-empty value also opts out of `--auto-reload-all`.
    Disabled,
}

impl AutoSetting {
    /// Combines the plain and typed auto values (`""` when absent), as Reloader
    /// does: either true enables; both empty is unset.
    fn from_values(auto: &str, typed_auto: &str) -> Self {
        if parse_go_bool(auto) == Some(true) || parse_go_bool(typed_auto) == Some(true) {
            AutoSetting::Enabled
        } else if auto.is_empty() && typed_auto.is_empty() {
            AutoSetting::Unset
        } else {
            AutoSetting::Disabled
        }
    }
}

/// One item of a named list.
#[derive(Debug, Clone)]
enum NamePattern {
    /// An item without regex syntax: `^item$` matches exactly `item`, so a string
    /// comparison does and costs no compiled program (the common case: plain names).
    Exact(String),
    /// `^item$`, compiled.
    Regex(Regex),
}

impl NamePattern {
    fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Exact(exact) => exact == name,
            NamePattern::Regex(regex) => regex.is_match(name),
        }
    }
}

impl PartialEq for NamePattern {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (NamePattern::Exact(a), NamePattern::Exact(b)) => a == b,
            (NamePattern::Regex(a), NamePattern::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

/// The characters that give an item regex meaning. Without any of them `^item$`
/// is a whole-string literal match.
const REGEX_META: &[char] = &[
    '\\', '.', '+', '*', '?', '(', ')', '|', '[', ']', '{', '}', '^', '$',
];

/// What one workload asks for about one source kind, after the pod-template
/// fallback was applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KindRules {
    named: Vec<NamePattern>,
    search: bool,
    auto: AutoSetting,
    exclude: Vec<String>,
    from_pod_template: bool,
}

impl KindRules {
    /// Whether the named list has at least one usable item.
    pub fn has_named(&self) -> bool {
        !self.named.is_empty()
    }

    /// Whether an item of the named list matches the whole of `name`.
    pub fn named_matches(&self, name: &str) -> bool {
        self.named.iter().any(|pattern| pattern.matches(name))
    }

    /// Whether the search annotation is exactly `"true"`.
    pub fn search(&self) -> bool {
        self.search
    }

    /// The combined plain and typed auto setting.
    pub fn auto(&self) -> AutoSetting {
        self.auto
    }

    /// Whether `name` is in the exclude list (exact, after trimming the items).
    pub fn is_excluded(&self, name: &str) -> bool {
        self.exclude.iter().any(|excluded| excluded == name)
    }

    /// Whether the named list, search and auto were read from the pod template
    /// because the workload's metadata had none of their keys (for debug logs).
    pub fn from_pod_template(&self) -> bool {
        self.from_pod_template
    }
}

/// A workload's reload rules for every source kind, parsed once per workload
/// version from its metadata annotations and its pod template's annotations.
///
/// For each source kind, the four rule keys are the kind's named list
/// (`configmap.reloader.stakater.com/reload`, …), `search`, `auto` and the kind's
/// typed auto. If the metadata holds none of those four keys (a key with an empty
/// value counts as held), all four are read from the pod template instead. The
/// test is per kind, as in Reloader: a Secret list on the metadata does not stop
/// ConfigMap rules from being read from the pod template. Exclude lists are read
/// from the metadata only.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadRules {
    kinds: [KindRules; 3],
    invalid: Vec<InvalidPattern>,
}

impl WorkloadRules {
    /// Parses the rules. `metadata` is the workload's `metadata.annotations`,
    /// `pod_template` its pod template's (for a CronJob, the job template's pod
    /// template's). Never fails: invalid named-list items are skipped and listed in
    /// [`WorkloadRules::invalid_patterns`].
    pub fn parse(
        metadata: &BTreeMap<String, String>,
        pod_template: &BTreeMap<String, String>,
        names: &AnnotationNames,
    ) -> Self {
        Self::parse_cached(metadata, pod_template, names, &mut PatternCache::default())
    }

    /// [`WorkloadRules::parse`], taking compiled regex items from `cache` and adding
    /// new ones to it. A workload's rules are parsed again on every event of it
    /// (status updates included); the cache makes that a few map lookups.
    pub fn parse_cached(
        metadata: &BTreeMap<String, String>,
        pod_template: &BTreeMap<String, String>,
        names: &AnnotationNames,
        cache: &mut PatternCache,
    ) -> Self {
        let mut invalid = Vec::new();
        let kinds = KINDS
            .map(|kind| KindRules::parse(kind, metadata, pod_template, names, cache, &mut invalid));
        WorkloadRules { kinds, invalid }
    }

    /// The rules for one source kind.
    pub fn for_kind(&self, kind: SourceKind) -> &KindRules {
        &self.kinds[slot(kind)]
    }

    /// Named-list items that did not compile, for the caller to log once per
    /// workload version.
    pub fn invalid_patterns(&self) -> &[InvalidPattern] {
        &self.invalid
    }
}

impl KindRules {
    fn parse(
        kind: SourceKind,
        metadata: &BTreeMap<String, String>,
        pod_template: &BTreeMap<String, String>,
        names: &AnnotationNames,
        cache: &mut PatternCache,
        invalid: &mut Vec<InvalidPattern>,
    ) -> Self {
        let reload_key = names.reload(kind);
        let typed_auto_key = names.typed_auto(kind);
        let rule_keys = [reload_key, &names.search, &names.auto, typed_auto_key];
        let from_pod_template = !rule_keys.iter().any(|key| metadata.contains_key(*key));
        let rules_from = if from_pod_template {
            pod_template
        } else {
            metadata
        };
        let value = |key: &str| rules_from.get(key).map_or("", String::as_str);

        KindRules {
            named: parse_named(reload_key, value(reload_key), cache, invalid),
            search: value(&names.search) == "true",
            auto: AutoSetting::from_values(value(&names.auto), value(typed_auto_key)),
            exclude: metadata
                .get(AnnotationNames::exclude(kind))
                .map(|list| list_items(list).map(str::to_owned).collect())
                .unwrap_or_default(),
            from_pod_template,
        }
    }
}

/// A comma list's items, trimmed, empty ones dropped. An empty item would be the
/// regex `^$` or the exact name `""` in Reloader, and no object has an empty name,
/// so dropping it changes no outcome.
fn list_items(list: &str) -> impl Iterator<Item = &str> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// Compiles a named list, each item as `^item$`.
///
/// The item is pasted between the anchors without a group, exactly as Reloader
/// does, so an alternation keeps Reloader's meaning: `a|b` becomes `^a|b$`, which
/// matches names starting with `a` or ending with `b`.
///
/// Go's RE2 and Rust's `regex` agree on what can match a Kubernetes object name
/// (ASCII lowercase, digits, `-`, `.`), once Go's `\Q…\E` quoting is expanded
/// ([`expand_quoted`]). What remains different changes no match, only whether an
/// item is reported: `\d \w \s \b` are Unicode-aware here and ASCII in Go (no
/// ASCII name tells them apart); Go takes a stray `{` (`a{`, `x{,3}`) as a literal
/// and Rust refuses the item, but no name contains `{`; Go refuses `\C`, repeat
/// counts above 1000, and (before Go 1.22) `(?<name>…)`, which Rust accepts.
fn parse_named(
    annotation: &str,
    list: &str,
    cache: &mut PatternCache,
    invalid: &mut Vec<InvalidPattern>,
) -> Vec<NamePattern> {
    let mut patterns = Vec::new();
    for item in list_items(list) {
        if !item.contains(REGEX_META) {
            patterns.push(NamePattern::Exact(item.to_owned()));
            continue;
        }
        match cache.compile(item) {
            Ok(regex) => patterns.push(NamePattern::Regex(regex)),
            Err(error) => {
                let report = InvalidPattern {
                    annotation: annotation.to_owned(),
                    item: item.to_owned(),
                    error,
                };
                // Two kinds may read the same key if flags give them one name.
                if !invalid.contains(&report) {
                    invalid.push(report);
                }
            }
        }
    }
    patterns
}

/// Named-list items already compiled, by item. A compiled `Regex` is shared by its
/// clones, so every workload naming the same item holds one program.
///
/// Bounded: at [`PatternCache::LIMIT`] distinct items it starts over, so that
/// annotations written with ever new items cannot grow it without end; and an
/// item whose program is larger than [`PatternCache::KEPT_SIZE`] is not kept at
/// all (compiled for the workload that names it and dropped with it), so that the
/// cache holds at most `LIMIT × KEPT_SIZE` of programs, not `LIMIT` times the
/// `regex` crate's own limit of 10 MiB each.
#[derive(Debug, Default)]
pub struct PatternCache {
    compiled: HashMap<String, Result<Regex, regex::Error>>,
    misses: u64,
}

impl PatternCache {
    /// Distinct items kept at most.
    pub const LIMIT: usize = 1024;

    /// The largest program kept, in bytes. A name pattern such as `app-.*` takes a
    /// few KiB; only an item with large repetitions of wide classes reaches this.
    pub const KEPT_SIZE: usize = 64 * 1024;

    /// `^item$`, compiled with Go's `\Q…\E` expanded, or why it does not compile.
    fn compile(&mut self, item: &str) -> Result<Regex, regex::Error> {
        if let Some(known) = self.compiled.get(item) {
            return known.clone();
        }
        self.misses += 1;
        // Expanded after the anchors are added: in Go, a `\Q` without `\E` quotes
        // the appended `$` too.
        let anchored = format!("^{item}$");
        let pattern = expand_quoted(&anchored);
        let compiled = match RegexBuilder::new(&pattern)
            .size_limit(Self::KEPT_SIZE)
            .build()
        {
            // Too large to keep, not invalid: compiled with the usual limit, uncached.
            Err(regex::Error::CompiledTooBig(_)) => return Regex::new(&pattern),
            compiled => compiled,
        };
        if self.compiled.len() >= Self::LIMIT {
            self.compiled.clear();
        }
        self.compiled.insert(item.to_owned(), compiled.clone());
        compiled
    }

    /// Items compiled since the cache was made (each a miss).
    pub fn misses(&self) -> u64 {
        self.misses
    }
}

/// Rewrites Go's `\Q…\E` (literal text, to the end of the pattern when `\E` is
/// missing) as escaped text, which Rust's `regex` has no syntax for. Go refuses
/// `\Q` inside a character class and this does not; no other input changes.
fn expand_quoted(item: &str) -> Cow<'_, str> {
    if !item.contains("\\Q") {
        return Cow::Borrowed(item);
    }
    let mut out = String::with_capacity(item.len() + 8);
    let mut rest = item;
    while let Some(pos) = rest.find('\\') {
        out.push_str(&rest[..pos]);
        let escaped = &rest[pos + 1..];
        match escaped.chars().next() {
            Some('Q') => {
                let quoted = &escaped[1..];
                let (literal, after) = quoted.split_once("\\E").unwrap_or((quoted, ""));
                out.push_str(&regex::escape(literal));
                rest = after;
            }
            // Any other escape, `\\` included, passes through whole, so that the
            // `Q` of `\\Q` is not taken for a quote.
            Some(other) => {
                out.push('\\');
                out.push(other);
                rest = &escaped[other.len_utf8()..];
            }
            None => {
                out.push('\\');
                rest = "";
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn mk_annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn mk_rules(metadata: &[(&str, &str)], pod_template: &[(&str, &str)]) -> WorkloadRules {
        WorkloadRules::parse(
            &mk_annotations(metadata),
            &mk_annotations(pod_template),
            &AnnotationNames::default(),
        )
    }

    const CM: SourceKind = SourceKind::ConfigMap;
    const SECRET: SourceKind = SourceKind::Secret;
    const SPC: SourceKind = SourceKind::SecretProviderClass;
    static EMPTY_MAP: BTreeMap<String, String> = BTreeMap::new();

    #[test]
    fn default_names_are_reloaders() {
        let names = AnnotationNames::default();
        assert_eq!(names.auto, "reloader.stakater.com/auto");
        assert_eq!(names.typed_auto(CM), "configmap.reloader.stakater.com/auto");
        assert_eq!(
            names.typed_auto(SECRET),
            "secret.reloader.stakater.com/auto"
        );
        assert_eq!(
            names.typed_auto(SPC),
            "secretproviderclass.reloader.stakater.com/auto"
        );
        assert_eq!(names.reload(CM), "configmap.reloader.stakater.com/reload");
        assert_eq!(names.reload(SECRET), "secret.reloader.stakater.com/reload");
        assert_eq!(
            names.reload(SPC),
            "secretproviderclass.reloader.stakater.com/reload"
        );
        assert_eq!(
            AnnotationNames::exclude(CM),
            "configmaps.exclude.reloader.stakater.com/reload"
        );
        assert_eq!(
            AnnotationNames::exclude(SECRET),
            "secrets.exclude.reloader.stakater.com/reload"
        );
        assert_eq!(
            AnnotationNames::exclude(SPC),
            "secretproviderclasses.exclude.reloader.stakater.com/reload"
        );
        assert_eq!(names.search, "reloader.stakater.com/search");
        assert_eq!(names.search_match, "reloader.stakater.com/match");
        assert_eq!(names.ignore, "reloader.stakater.com/ignore");
        assert_eq!(
            names.pause_period,
            "deployment.reloader.stakater.com/pause-period"
        );
        assert_eq!(
            names.paused_at,
            "deployment.reloader.stakater.com/paused-at"
        );
    }

    #[test]
    fn go_parse_bool_forms() {
        for text in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(text), Some(true), "{text:?}");
        }
        for text in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(text), Some(false), "{text:?}");
        }
        for text in ["", "yes", "on", "tRuE", " true", "true ", "2", "y"] {
            assert_eq!(parse_go_bool(text), None, "{text:?}");
        }
    }

    #[test]
    fn auto_setting_combines_plain_and_typed_values() {
        use AutoSetting::*;
        let cases = [
            ("", "", Unset),
            ("true", "", Enabled),
            ("", "true", Enabled),
            ("T", "", Enabled),
            ("1", "", Enabled),
            ("false", "", Disabled),
            ("", "false", Disabled),
            // Either true wins over the other's false.
            ("false", "true", Enabled),
            ("true", "false", Enabled),
            // A value that is not a bool is false, and still opts out.
            ("yes", "", Disabled),
            ("", "on", Disabled),
        ];
        for (auto, typed, expected) in cases {
            assert_eq!(
                AutoSetting::from_values(auto, typed),
                expected,
                "auto={auto:?} typed={typed:?}"
            );
        }
    }

    #[test]
    fn typed_auto_applies_to_its_own_kind_only() {
        let rules = mk_rules(&[("configmap.reloader.stakater.com/auto", "true")], &[]);
        assert_eq!(rules.for_kind(CM).auto(), AutoSetting::Enabled);
        assert_eq!(rules.for_kind(SECRET).auto(), AutoSetting::Unset);
        assert_eq!(rules.for_kind(SPC).auto(), AutoSetting::Unset);

        let rules = mk_rules(
            &[("secretproviderclass.reloader.stakater.com/auto", "true")],
            &[],
        );
        assert_eq!(rules.for_kind(SPC).auto(), AutoSetting::Enabled);
        assert_eq!(rules.for_kind(CM).auto(), AutoSetting::Unset);
    }

    #[test]
    fn rules_fall_back_to_the_pod_template_when_metadata_has_no_rule_key() {
        let pod = [
            ("configmap.reloader.stakater.com/reload", "app-config"),
            ("reloader.stakater.com/search", "true"),
            ("reloader.stakater.com/auto", "true"),
        ];
        // Unrelated metadata annotations do not stop the fallback.
        let rules = mk_rules(&[("team", "a")], &pod);
        let cm = rules.for_kind(CM);
        assert!(cm.from_pod_template());
        assert!(cm.named_matches("app-config"));
        assert!(cm.search());
        assert_eq!(cm.auto(), AutoSetting::Enabled);
    }

    #[test]
    fn any_of_the_four_rule_keys_on_metadata_stops_the_fallback() {
        let pod = [
            ("configmap.reloader.stakater.com/reload", "app-config"),
            ("reloader.stakater.com/search", "true"),
            ("reloader.stakater.com/auto", "true"),
            ("configmap.reloader.stakater.com/auto", "true"),
        ];
        for key in [
            "configmap.reloader.stakater.com/reload",
            "reloader.stakater.com/search",
            "reloader.stakater.com/auto",
            "configmap.reloader.stakater.com/auto",
        ] {
            // Even an empty value counts as present.
            let rules = mk_rules(&[(key, "")], &pod);
            let cm = rules.for_kind(CM);
            assert!(!cm.from_pod_template(), "{key}");
            assert!(!cm.named_matches("app-config"), "{key}");
            assert!(!cm.search(), "{key}");
            assert_eq!(cm.auto(), AutoSetting::Unset, "{key}");
        }
    }

    #[test]
    fn the_fallback_is_decided_per_source_kind() {
        // The Secret list and the Secret typed auto on metadata are not ConfigMap
        // rule keys: ConfigMap rules still come from the pod template.
        let pod = [("configmap.reloader.stakater.com/reload", "app-config")];
        for key in [
            "secret.reloader.stakater.com/reload",
            "secret.reloader.stakater.com/auto",
        ] {
            let rules = mk_rules(&[(key, "db-secret")], &pod);
            assert!(rules.for_kind(CM).from_pod_template(), "{key}");
            assert!(rules.for_kind(CM).named_matches("app-config"), "{key}");
            assert!(!rules.for_kind(SECRET).from_pod_template(), "{key}");
        }
        let rules = mk_rules(
            &[("secret.reloader.stakater.com/reload", "db-secret")],
            &pod,
        );
        assert!(rules.for_kind(SECRET).named_matches("db-secret"));
        assert!(!rules.for_kind(SECRET).named_matches("app-config"));
    }

    #[test]
    fn exclude_lists_are_read_from_metadata_only_and_per_kind() {
        let exclude = "configmaps.exclude.reloader.stakater.com/reload";
        let rules = mk_rules(&[], &[(exclude, "app-config")]);
        assert!(!rules.for_kind(CM).is_excluded("app-config"));

        let rules = mk_rules(&[(exclude, "app-config")], &[]);
        assert!(rules.for_kind(CM).is_excluded("app-config"));
        assert!(!rules.for_kind(SECRET).is_excluded("app-config"));
        assert!(!rules.for_kind(SPC).is_excluded("app-config"));

        let rules = mk_rules(
            &[(
                "secretproviderclasses.exclude.reloader.stakater.com/reload",
                "vault",
            )],
            &[],
        );
        assert!(rules.for_kind(SPC).is_excluded("vault"));
        assert!(!rules.for_kind(SECRET).is_excluded("vault"));
    }

    #[test]
    fn exclude_items_are_exact_trimmed_names_not_regexes() {
        let rules = mk_rules(
            &[(
                "secrets.exclude.reloader.stakater.com/reload",
                " db-.* , tls ,,",
            )],
            &[],
        );
        let secret = rules.for_kind(SECRET);
        assert!(secret.is_excluded("db-.*"));
        assert!(!secret.is_excluded("db-password"));
        assert!(secret.is_excluded("tls"));
        assert!(!secret.is_excluded(""));
        assert!(!secret.is_excluded("tls2"));
    }

    #[test]
    fn named_items_match_the_whole_name() {
        let rules = mk_rules(
            &[("configmap.reloader.stakater.com/reload", "app-.*, app ,web")],
            &[],
        );
        let cm = rules.for_kind(CM);
        assert!(cm.named_matches("app-x"));
        assert!(!cm.named_matches("xapp-x"));
        assert!(cm.named_matches("app"));
        assert!(!cm.named_matches("app2"));
        assert!(!cm.named_matches("2app"));
        assert!(cm.named_matches("web"));
        assert!(!cm.named_matches("webx"));
        // A dot is a regex dot, as in Reloader.
        let rules = mk_rules(&[("configmap.reloader.stakater.com/reload", "my.app")], &[]);
        assert!(rules.for_kind(CM).named_matches("my.app"));
        assert!(rules.for_kind(CM).named_matches("myxapp"));
    }

    #[test]
    fn an_alternation_keeps_reloaders_unbracketed_anchors() {
        // Reloader compiles "^" + "a|b" + "$": the anchors bind to the sides.
        let rules = mk_rules(
            &[("configmap.reloader.stakater.com/reload", "app|web")],
            &[],
        );
        let cm = rules.for_kind(CM);
        assert!(cm.named_matches("app-config"));
        assert!(cm.named_matches("my-web"));
        assert!(!cm.named_matches("my-app-config"));
    }

    #[test]
    fn go_quoted_literals_are_understood() {
        let rules = mk_rules(
            &[(
                "configmap.reloader.stakater.com/reload",
                r"\Qmy.app\E-.*, \Qa.b, x\\Q",
            )],
            &[],
        );
        let cm = rules.for_kind(CM);
        assert!(rules.invalid_patterns().is_empty());
        assert!(cm.named_matches("my.app-1"));
        assert!(!cm.named_matches("myxapp-1"));
        // Without `\E`, the quote runs to the end and takes Reloader's `$` with
        // it: Go's regex is then "starts with `a.b$`", which no name can.
        assert!(!cm.named_matches("a.b"));
        assert!(cm.named_matches("a.b$"));
        // An escaped backslash before `Q` is no quote.
        assert!(cm.named_matches(r"x\Q"));
    }

    #[test]
    fn empty_items_are_skipped() {
        let rules = mk_rules(&[("configmap.reloader.stakater.com/reload", " , ,")], &[]);
        assert!(!rules.for_kind(CM).has_named());
        assert!(rules.invalid_patterns().is_empty());
        let rules = mk_rules(&[("configmap.reloader.stakater.com/reload", "")], &[]);
        assert!(!rules.for_kind(CM).has_named());
        let rules = mk_rules(&[], &[]);
        assert!(!rules.for_kind(CM).has_named());
    }

    #[test]
    fn an_invalid_item_is_reported_and_the_others_still_work() {
        let rules = mk_rules(
            &[(
                "configmap.reloader.stakater.com/reload",
                "app-(, other ,[z-a], good-.*",
            )],
            &[],
        );
        let cm = rules.for_kind(CM);
        assert!(cm.named_matches("other"));
        assert!(cm.named_matches("good-1"));
        assert!(!cm.named_matches("app-("));
        let items: Vec<(&str, &str)> = rules
            .invalid_patterns()
            .iter()
            .map(|p| (p.annotation.as_str(), p.item.as_str()))
            .collect();
        assert_eq!(
            items,
            [
                ("configmap.reloader.stakater.com/reload", "app-("),
                ("configmap.reloader.stakater.com/reload", "[z-a]"),
            ]
        );
        let message = rules.invalid_patterns()[0].to_string();
        assert!(message.contains("\"app-(\""), "{message}");
        // One log line, saying what is wrong.
        assert!(!message.contains('\n'), "{message}");
        assert!(message.ends_with("unclosed group"), "{message}");
        assert!(
            message.contains("configmap.reloader.stakater.com/reload"),
            "{message}"
        );
    }

    #[test]
    fn a_cached_item_is_compiled_once_and_decides_as_a_fresh_parse() {
        let names = AnnotationNames::default();
        let metadata = mk_annotations(&[(
            "configmap.reloader.stakater.com/reload",
            "app-.*, bad(, plain",
        )]);
        let mut cache = PatternCache::default();
        let first = WorkloadRules::parse_cached(&metadata, &EMPTY_MAP, &names, &mut cache);
        // The valid and the invalid regex item; the plain name needs no program.
        assert_eq!(cache.misses(), 2);
        let again = WorkloadRules::parse_cached(&metadata, &EMPTY_MAP, &names, &mut cache);
        assert_eq!(cache.misses(), 2, "the second parse compiled again");
        let fresh = WorkloadRules::parse(&metadata, &EMPTY_MAP, &names);
        assert_eq!(first, fresh);
        assert_eq!(again, fresh);
        // The invalid item is still reported by every parse that reads it.
        assert_eq!(again.invalid_patterns(), fresh.invalid_patterns());
        assert_eq!(again.invalid_patterns().len(), 1);
        assert!(again.for_kind(CM).named_matches("app-1"));
        assert!(again.for_kind(CM).named_matches("plain"));
    }

    #[test]
    fn the_pattern_cache_starts_over_at_its_limit() {
        let names = AnnotationNames::default();
        let mut cache = PatternCache::default();
        let parse = |cache: &mut PatternCache, item: String| {
            let metadata = mk_annotations(&[("configmap.reloader.stakater.com/reload", &item)]);
            WorkloadRules::parse_cached(&metadata, &EMPTY_MAP, &names, cache)
        };
        // One item more than the limit: the last one starts the cache over.
        for i in 0..=PatternCache::LIMIT {
            parse(&mut cache, format!("app-{i}-.*"));
        }
        let misses = PatternCache::LIMIT as u64 + 1;
        assert_eq!(cache.misses(), misses);
        // The item kept after starting over is still known…
        parse(&mut cache, format!("app-{}-.*", PatternCache::LIMIT));
        assert_eq!(cache.misses(), misses);
        // …and the first one was dropped, and still works once compiled again.
        let rules = parse(&mut cache, "app-0-.*".to_owned());
        assert_eq!(cache.misses(), misses + 1);
        assert!(rules.for_kind(CM).named_matches("app-0-x"));
        assert!(cache.compiled.len() <= PatternCache::LIMIT);
    }

    #[test]
    fn a_large_program_is_compiled_for_its_workload_but_not_kept() {
        let names = AnnotationNames::default();
        let mut cache = PatternCache::default();
        // Unicode `\w` is a wide class: 200 of them make a program of some 100s of
        // KiB, over what the cache keeps and under the regex crate's limit.
        let large = r"\w{200}";
        let metadata = mk_annotations(&[("configmap.reloader.stakater.com/reload", large)]);
        for parse in 1..=2 {
            let rules = WorkloadRules::parse_cached(&metadata, &EMPTY_MAP, &names, &mut cache);
            assert!(
                rules.invalid_patterns().is_empty(),
                "{:?}",
                rules.invalid_patterns()
            );
            assert!(rules.for_kind(CM).named_matches(&"é".repeat(200)));
            assert!(!rules.for_kind(CM).named_matches(&"é".repeat(199)));
            assert_eq!(cache.misses(), parse, "compiled on each parse");
        }
        assert!(cache.compiled.is_empty(), "the large program was kept");
    }

    #[test]
    fn an_invalid_item_in_a_list_that_is_not_read_is_not_reported() {
        // Metadata has a rule key, so the pod template's list is never read.
        let rules = mk_rules(
            &[("reloader.stakater.com/auto", "true")],
            &[("configmap.reloader.stakater.com/reload", "bad(")],
        );
        assert!(rules.invalid_patterns().is_empty());
    }

    #[test]
    fn search_is_exactly_true() {
        for (value, expected) in [
            ("true", true),
            ("True", false),
            ("TRUE", false),
            ("1", false),
            ("t", false),
            (" true", false),
        ] {
            let rules = mk_rules(&[("reloader.stakater.com/search", value)], &[]);
            assert_eq!(rules.for_kind(CM).search(), expected, "{value:?}");
            assert_eq!(rules.for_kind(SECRET).search(), expected, "{value:?}");
        }
    }

    #[test]
    fn source_flags_are_exactly_true() {
        let names = AnnotationNames::default();
        let flags = SourceFlags::parse(
            &mk_annotations(&[
                ("reloader.stakater.com/ignore", "true"),
                ("reloader.stakater.com/match", "true"),
            ]),
            &names,
        );
        assert_eq!(
            flags,
            SourceFlags {
                ignore: true,
                matched: true
            }
        );
        let flags = SourceFlags::parse(
            &mk_annotations(&[
                ("reloader.stakater.com/ignore", "True"),
                ("reloader.stakater.com/match", "1"),
            ]),
            &names,
        );
        assert_eq!(flags, SourceFlags::default());
        assert_eq!(
            SourceFlags::parse(&BTreeMap::new(), &names),
            SourceFlags::default()
        );
    }

    #[test]
    fn renamed_names_are_read_and_the_defaults_no_longer_are() {
        let names = AnnotationNames {
            auto: "acme.io/auto".into(),
            configmap_auto: "acme.io/cm-auto".into(),
            secret_auto: "acme.io/secret-auto".into(),
            configmap_reload: "acme.io/cm".into(),
            secret_reload: "acme.io/secret".into(),
            search: "acme.io/search".into(),
            search_match: "acme.io/match".into(),
            ignore: "acme.io/ignore".into(),
            pause_period: "acme.io/pause".into(),
            paused_at: "acme.io/paused-at".into(),
        };
        let rules = WorkloadRules::parse(
            &mk_annotations(&[
                ("acme.io/cm", "app-config"),
                ("acme.io/secret-auto", "true"),
                ("acme.io/search", "true"),
            ]),
            &BTreeMap::new(),
            &names,
        );
        assert!(rules.for_kind(CM).named_matches("app-config"));
        assert!(rules.for_kind(CM).search());
        assert_eq!(rules.for_kind(SECRET).auto(), AutoSetting::Enabled);
        assert_eq!(rules.for_kind(CM).auto(), AutoSetting::Unset);

        let defaults = WorkloadRules::parse(
            &mk_annotations(&[
                ("configmap.reloader.stakater.com/reload", "app-config"),
                ("reloader.stakater.com/auto", "true"),
            ]),
            &BTreeMap::new(),
            &names,
        );
        assert!(!defaults.for_kind(CM).has_named());
        assert_eq!(defaults.for_kind(CM).auto(), AutoSetting::Unset);

        let flags = SourceFlags::parse(
            &mk_annotations(&[
                ("acme.io/ignore", "true"),
                ("reloader.stakater.com/match", "true"),
            ]),
            &names,
        );
        assert_eq!(
            flags,
            SourceFlags {
                ignore: true,
                matched: false
            }
        );
    }

    #[test]
    fn renamed_plain_auto_also_decides_the_fallback() {
        let names = AnnotationNames {
            auto: "acme.io/auto".into(),
            ..AnnotationNames::default()
        };
        let rules = WorkloadRules::parse(
            &mk_annotations(&[("acme.io/auto", "false")]),
            &mk_annotations(&[("acme.io/auto", "true")]),
            &names,
        );
        assert!(!rules.for_kind(CM).from_pod_template());
        assert_eq!(rules.for_kind(CM).auto(), AutoSetting::Disabled);
    }

    #[test]
    fn rollout_strategy_is_restart_only_for_exactly_restart() {
        let read = |value: &str| {
            RolloutStrategy::from_annotations(&mk_annotations(&[(ROLLOUT_STRATEGY, value)]))
        };
        assert_eq!(read("restart"), RolloutStrategy::Restart);
        assert_eq!(read("rollout"), RolloutStrategy::Rollout);
        assert_eq!(read("Restart"), RolloutStrategy::Rollout);
        assert_eq!(
            RolloutStrategy::from_annotations(&BTreeMap::new()),
            RolloutStrategy::Rollout
        );
    }
}
