//! Keeping the documentation true: the tests of each binary use these to check that
//! the `--help` text embedded in its reference page is the binary's own, that every
//! flag a documented command uses exists, and (with the control plane,
//! `create_document`) that every manifest in the docs and the recipes is accepted by a
//! real API server.
//!
//! A reference page holds generated blocks between markers:
//!
//! ````text
//! <!-- help: rekindle watch -->
//! ```text
//! ...the output of `rekindle watch --help`...
//! ```
//! <!-- end help -->
//! ````
//!
//! With `REKINDLE_BLESS_DOCS=1` the check rewrites the blocks instead of failing.

use std::fs;
use std::path::{Path, PathBuf};

const BEGIN: &str = "<!-- help: ";
const END: &str = "<!-- end help -->";

/// The repository root (this crate is at `crates/rekindle-testenv`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether the run should rewrite generated blocks instead of failing on them.
pub fn blessing() -> bool {
    std::env::var_os("REKINDLE_BLESS_DOCS").is_some_and(|v| v == "1")
}

/// Checks (or with [`blessing`], rewrites) every help block of `page`: the block
/// marked `<!-- help: BIN ARGS... -->` must hold `help(ARGS)`. Returns the
/// commands whose blocks were checked; panics with a diff-friendly message on the
/// first stale block.
pub fn check_help_blocks(page: &Path, help: impl Fn(&[&str]) -> String) -> Vec<String> {
    let text = fs::read_to_string(page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
    let mut out = String::new();
    let mut rest = text.as_str();
    let mut checked = Vec::new();
    while let Some(start) = rest.find(BEGIN) {
        let (before, from) = rest.split_at(start);
        out.push_str(before);
        let line_end = from.find('\n').expect("a marker line");
        let marker = &from[..line_end];
        let command = marker
            .strip_prefix(BEGIN)
            .and_then(|m| m.strip_suffix(" -->"))
            .unwrap_or_else(|| panic!("malformed marker {marker:?} in {}", page.display()));
        let end = from
            .find(END)
            .unwrap_or_else(|| panic!("no {END} after {marker:?} in {}", page.display()));
        let words: Vec<&str> = command.split_whitespace().skip(1).collect();
        let expected = format!("{marker}\n```text\n{}\n```\n", help(&words).trim_end());
        let found = &from[..end];
        if found != expected {
            assert!(
                blessing(),
                "{}: the help of `{command}` changed; regenerate with\n  REKINDLE_BLESS_DOCS=1 cargo test --workspace --test docs\n--- in the page:\n{found}\n--- now:\n{expected}",
                page.display()
            );
        }
        out.push_str(&expected);
        checked.push(command.to_owned());
        rest = &from[end..];
    }
    out.push_str(rest);
    if blessing() && out != text {
        fs::write(page, out).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
    }
    checked
}

/// Every Markdown file of the documentation: `README.md`, `docs/**`, each crate's,
/// example's and recipe's README (`examples/recipes/*/README.md`), and `deploy/`'s.
pub fn markdown_files() -> Vec<PathBuf> {
    let root = repo_root();
    let mut files = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    for parent in ["crates", "deploy", "examples", "examples/recipes"] {
        for entry in fs::read_dir(root.join(parent))
            .into_iter()
            .flatten()
            .flatten()
        {
            let readme = entry.path().join("README.md");
            if readme.is_file() {
                files.push(readme);
            }
        }
    }
    let deploy = root.join("deploy/README.md");
    if deploy.is_file() {
        files.push(deploy);
    }
    files.sort();
    files.dedup();
    files
}

/// The fenced code blocks of a Markdown text, as (info string, body).
pub fn code_blocks(markdown: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        let Some(info) = trimmed.strip_prefix("```") else {
            continue;
        };
        let indent = line.len() - trimmed.len();
        let mut body = String::new();
        for inner in lines.by_ref() {
            if inner.trim_start().starts_with("```") {
                break;
            }
            body.push_str(inner.get(indent..).unwrap_or(inner.trim_start()));
            body.push('\n');
        }
        blocks.push((info.trim().to_owned(), body));
    }
    blocks
}

/// The command lines of shell blocks that run `binary`, with `\` continuations joined
/// and comments dropped: each as its words after the binary name.
pub fn commands_of(binary: &str, markdown: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    for (info, body) in code_blocks(markdown) {
        if !matches!(info.as_str(), "sh" | "bash" | "shell" | "console" | "") {
            continue;
        }
        let joined = body.replace("\\\n", " ");
        for line in joined.lines() {
            let line = line.split(" #").next().unwrap_or(line).trim();
            let line = line.strip_prefix("$ ").unwrap_or(line);
            let words = shell_words(line);
            let Some(first) = words.first() else { continue };
            // `VAR=value rekindle ...` and `exec rekindle ...` count too.
            let start = words
                .iter()
                .position(|w| w == binary || w.ends_with(&format!("/{binary}")));
            if first.starts_with('#') {
                continue;
            }
            if let Some(start) = start
                && words[..start]
                    .iter()
                    .all(|w| w.contains('=') || w == "exec" || w == "sudo")
            {
                commands.push(words[start + 1..].to_vec());
            }
        }
    }
    commands
}

/// Splits a command line into words, honouring single and double quotes (enough for
/// documentation examples; no expansions).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The long flags a command uses (`--flag` and `--flag=value`), up to a lone `--`.
pub fn flags_of(words: &[String]) -> Vec<String> {
    words
        .iter()
        .take_while(|w| *w != "--")
        .filter_map(|w| w.strip_prefix("--"))
        .map(|f| f.split('=').next().unwrap_or(f).to_owned())
        .filter(|f| !f.is_empty())
        .collect()
}

/// The manifests in the docs: every `yaml` block that has a `kind:`, as its
/// documents, with the file each came from.
pub fn manifests() -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    for file in markdown_files() {
        let text = fs::read_to_string(&file).unwrap_or_default();
        for (info, body) in code_blocks(&text) {
            if (info == "yaml" || info == "yml") && body.contains("kind:") {
                found.push((file.clone(), body));
            }
        }
    }
    found
}

/// Why the API server did not take a manifest's document ([`create_document`]).
#[cfg(feature = "cluster")]
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The document is not a Kubernetes object (no `apiVersion` or `kind`, or a
    /// `metadata` that does not parse).
    #[error("not a Kubernetes object: {0}")]
    Malformed(String),
    /// This API server does not serve the kind (a CRD that is not installed, or an API
    /// newer than the server).
    #[error("{api_version} {kind} is not served by this API server")]
    NotServed {
        api_version: String,
        kind: String,
        #[source]
        source: kube::Error,
    },
    /// The API server refused the object: validation, admission, or a missing namespace
    /// (a 404).
    #[error("rejected: {0}")]
    Rejected(#[source] kube::Error),
}

/// Creates one document of a manifest on the API server, as `kubectl create` would:
/// the kind is looked up by discovery, a namespaced object goes to its own namespace or
/// else to `namespace`. With `dry_run`, the server validates and admits it without
/// storing it (`?dryRun=All`), which is how the tests check manifests.
#[cfg(feature = "cluster")]
pub async fn create_document(
    client: &kube::Client,
    doc: &serde_json::Value,
    namespace: &str,
    dry_run: bool,
) -> Result<(), ManifestError> {
    use kube::api::{Api, DynamicObject, PostParams};
    use kube::core::GroupVersionKind;
    use kube::discovery::Scope;

    let api_version = doc.get("apiVersion").and_then(serde_json::Value::as_str);
    let kind = doc.get("kind").and_then(serde_json::Value::as_str);
    let (Some(api_version), Some(kind)) = (api_version, kind) else {
        return Err(ManifestError::Malformed("no apiVersion or kind".to_owned()));
    };
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|source| ManifestError::NotServed {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            source,
        })?;
    let object: DynamicObject =
        serde_json::from_value(doc.clone()).map_err(|e| ManifestError::Malformed(e.to_string()))?;
    let api: Api<DynamicObject> = match caps.scope {
        Scope::Namespaced => {
            let ns = object.metadata.namespace.as_deref().unwrap_or(namespace);
            Api::namespaced_with(client.clone(), ns, &resource)
        }
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    let params = PostParams {
        dry_run,
        ..PostParams::default()
    };
    api.create(&params, &object)
        .await
        .map_err(ManifestError::Rejected)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_found_with_continuations_and_quotes() {
        let md = "text\n```sh\n# a comment\nrekindle watch --dir /a \\\n    --validate 'nginx -t' # trailing\nFOO=1 rekindle run --watch /b -- app --flag\ncurl x\n```\n```yaml\nrekindle: no\n```\n";
        let commands = commands_of("rekindle", md);
        assert_eq!(commands.len(), 2, "{commands:?}");
        assert_eq!(
            commands[0],
            ["watch", "--dir", "/a", "--validate", "nginx -t"]
        );
        assert_eq!(flags_of(&commands[1]), ["watch"]);
    }

    #[test]
    fn indented_blocks_are_read() {
        let md = "- item\n\n  ```sh\n  rekindle doctor /etc/app\n  ```\n";
        assert_eq!(commands_of("rekindle", md), [["doctor", "/etc/app"]]);
    }
}
