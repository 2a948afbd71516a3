//! Environment variables that came from the config: set once when the container
//! started, never updated. Found by name: a variable named like a key of a watched
//! volume is what `envFrom` (or `valueFrom`) of the same ConfigMap gives.

use std::collections::BTreeSet;

use super::problem::Problem;

const FIX: &str = "\
Environment variables are set once, when the container starts. Either read the value
from the mounted file (and reload with the rekindle library, `rekindle watch` or
`rekindle run`), or have the workload rolled when the ConfigMap or Secret changes:
  metadata:
    annotations:
      reloader.stakater.com/auto: \"true\"    # with rekindle-operator installed";

/// The variable names (never values) equal to one of `keys`.
pub fn from_config(vars: impl IntoIterator<Item = String>, keys: &BTreeSet<String>) -> Vec<String> {
    let mut names: Vec<String> = vars.into_iter().filter(|v| keys.contains(v)).collect();
    names.sort();
    names
}

pub fn problem(names: &[String]) -> Option<Problem> {
    (!names.is_empty()).then(|| {
        Problem::new(
            "env-from-config",
            "environment",
            format!(
                "{} named like keys of the watched config: {} (they will not change when the config does)",
                if names.len() == 1 { "a variable is" } else { "variables are" },
                names.join(", ")
            ),
            FIX,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_equal_to_keys_count() {
        let keys: BTreeSet<String> = ["LOG_LEVEL", "app.yaml"].map(String::from).into();
        let vars = ["PATH", "LOG_LEVEL", "HOME", "log_level"].map(String::from);
        let names = from_config(vars, &keys);
        assert_eq!(names, ["LOG_LEVEL"]);
        let p = problem(&names).expect("a problem");
        assert!(p.message.contains("LOG_LEVEL"));
        assert!(problem(&[]).is_none());
    }
}
