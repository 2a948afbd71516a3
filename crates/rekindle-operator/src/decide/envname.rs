//! Reloader's env-var names: `STAKATER_<NAME>_CONFIGMAP` and friends.
//!
//! The name must be exactly Reloader's, or a workload migrated from Reloader
//! would get a second variable (and a needless rollout). Reloader upper-cases
//! the name, keeps `A-Z` and `0-9`, and turns a run of anything else into one
//! `_`, written only after a kept character: leading junk vanishes, trailing
//! junk leaves one `_`. So `a-b`, `a.b` and `a_b` share one variable, as they
//! do in Reloader.

use crate::model::SourceKind;

/// The marker variable for a source of `kind` named `name`.
pub fn env_var_name(kind: SourceKind, name: &str) -> String {
    format!("STAKATER_{}_{}", convert(name), kind.upper())
}

/// Reloader's `ConvertToEnvVarName`.
fn convert(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last_kept = false;
    for ch in text.chars().map(upper) {
        if ch.is_ascii_uppercase() || ch.is_ascii_digit() {
            out.push(ch);
            last_kept = true;
        } else {
            if last_kept {
                out.push('_');
            }
            last_kept = false;
        }
    }
    out
}

/// Go's `strings.ToUpper` maps rune by rune; the only way a character that is
/// not ASCII becomes a kept one is a single-character upper case in ASCII
/// (`ı` → `I`, `ſ` → `S`). Object names are DNS labels, so this is only for
/// exactness; anything else is junk either way.
fn upper(ch: char) -> char {
    if ch.is_ascii() {
        return ch.to_ascii_uppercase();
    }
    let mut upper = ch.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(single), None) if single.is_ascii() => single,
        _ => ch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_reloaders() {
        assert_eq!(
            env_var_name(SourceKind::ConfigMap, "my.app.config"),
            "STAKATER_MY_APP_CONFIG_CONFIGMAP"
        );
        assert_eq!(
            env_var_name(SourceKind::ConfigMap, "my--config"),
            "STAKATER_MY_CONFIG_CONFIGMAP"
        );
        assert_eq!(
            env_var_name(SourceKind::ConfigMap, "abc-"),
            "STAKATER_ABC__CONFIGMAP"
        );
        assert_eq!(
            env_var_name(SourceKind::Secret, "db-creds"),
            "STAKATER_DB_CREDS_SECRET"
        );
        assert_eq!(
            env_var_name(SourceKind::SecretProviderClass, "vault"),
            "STAKATER_VAULT_SECRETPROVIDERCLASS"
        );
    }

    #[test]
    fn leading_junk_vanishes_and_digits_are_kept() {
        assert_eq!(convert("--9lives"), "9LIVES");
        assert_eq!(convert("..a"), "A");
        assert_eq!(convert("v2.1"), "V2_1");
        assert_eq!(convert(""), "");
    }

    #[test]
    fn separators_collide_as_in_reloader() {
        assert_eq!(convert("a_b"), convert("a-b"));
        assert_eq!(convert("a.b"), convert("a-b"));
    }

    #[test]
    fn non_ascii_is_junk_unless_it_upper_cases_to_ascii() {
        assert_eq!(convert("café-x"), "CAF_X");
        assert_eq!(convert("ıd"), "ID");
        assert_eq!(convert("straße"), "STRA_E");
    }
}
