//! The checks every rekindle image passes, shared by the image tests of the
//! crates that ship one (`rekindle-cli`, `rekindle-operator`).
//!
//! An image is one static binary, run as nobody: the layout built by
//! `scripts/build-images.sh` validates (`skopeo inspect`), its config has the
//! Dockerfile's user, entrypoint and labels, its one layer holds exactly the
//! binary, and that binary runs with an empty environment and no file beside
//! it. Each check panics with what was wrong, as test assertions do.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::elf;
use crate::image::{Dockerfile, EntryKind, Layout, images_dir};

/// What a checked image is made of, for the test to print.
#[derive(Debug, Clone)]
pub struct ImageSummary {
    /// `DIR:TAG`, as skopeo's `oci:` transport names it.
    pub reference: String,
    pub binary_bytes: u64,
    /// The compressed layer, as a registry stores it.
    pub layer_bytes: u64,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Checks the image `name` (its layout `<images dir>/<name>`, tagged
/// `version`), whose entrypoint is the binary `/<name>`. Panics on the first
/// check that fails; a missing layout fails too, saying how to build it.
pub fn check_one_binary_image(name: &str, version: &str) -> ImageSummary {
    let dir = images_dir().join(name);
    let layout = Layout::open(&dir, version).unwrap_or_else(|e| panic!("{e}"));
    let reference = format!("{}:{version}", dir.display());

    // skopeo reads it as a registry client would.
    let inspect = run_ok(Command::new("skopeo").args(["inspect", &format!("oci:{reference}")]));
    let inspect: Value = serde_json::from_slice(&inspect.stdout).expect("skopeo prints JSON");
    let config = &layout.config()["config"];
    assert_eq!(inspect["Architecture"], "amd64", "{inspect}");
    assert_eq!(inspect["Os"], "linux", "{inspect}");
    assert_eq!(inspect["Labels"], config["Labels"], "skopeo's labels");

    // The config is what the Dockerfile says, with its ARGs filled in.
    let dockerfile_path = workspace().join("images").join(name).join("Dockerfile");
    let text = std::fs::read_to_string(&dockerfile_path)
        .unwrap_or_else(|e| panic!("{}: {e}", dockerfile_path.display()));
    let dockerfile =
        Dockerfile::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", dockerfile_path.display()));
    let entrypoint = format!("/{name}");
    assert_eq!(dockerfile.from, "scratch");
    assert_eq!(config["User"], "65534:65534", "the image runs as nobody");
    assert_eq!(config["User"], dockerfile.user.as_str());
    assert_eq!(config["Entrypoint"], serde_json::json!([entrypoint]));
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(dockerfile.entrypoint)
    );
    assert!(config["Cmd"].is_null(), "no Cmd: {config}");
    assert!(config["Env"].is_null(), "no Env: {config}");
    let labels = config["Labels"].as_object().expect("labels");
    let label = |key: &str| {
        labels
            .get(&format!("org.opencontainers.image.{key}"))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no org.opencontainers.image.{key} label: {config}"))
    };
    assert_eq!(label("title"), name);
    assert_eq!(label("version"), version);
    assert_eq!(label("licenses"), "Apache-2.0");
    let revision = label("revision");
    assert!(
        revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit()),
        "revision is a commit: {revision:?}"
    );
    let created = label("created");
    assert_eq!(
        layout.config()["created"],
        created,
        "created label and config"
    );
    assert!(
        created.len() == 20 && created.ends_with('Z') && created.as_bytes()[10] == b'T',
        "created is an RFC 3339 UTC time: {created:?}"
    );
    for (key, value) in &dockerfile.labels {
        let expected = match value.as_str() {
            "${VERSION}" => version,
            "${REVISION}" => revision,
            "${CREATED}" => created,
            other => other,
        };
        assert_eq!(
            labels.get(key).and_then(Value::as_str),
            Some(expected),
            "{key}"
        );
    }
    assert_eq!(labels.len(), dockerfile.labels.len(), "labels: {config}");

    // One layer, holding exactly the binary.
    assert_eq!(layout.layers().len(), 1, "layers: {}", layout.manifest());
    let entries = layout.layer(0).unwrap_or_else(|e| panic!("{e}"));
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, [name], "the layer holds exactly the binary");
    let binary = &entries[0];
    assert_eq!(binary.kind, EntryKind::File);
    assert_eq!(binary.mode, 0o755, "mode {:o}", binary.mode);
    assert_eq!(
        (binary.uid, binary.gid),
        (0, 0),
        "owned by root, run as nobody"
    );
    if let Err(e) = elf::check_static(&binary.data) {
        panic!("/{name} in the image is not static: {e}");
    }
    let built = images_dir()
        .join("../x86_64-unknown-linux-musl/dist")
        .join(name);
    match std::fs::read(&built) {
        Ok(bytes) => assert!(
            bytes == binary.data,
            "the image holds another binary than {}: rebuild it with scripts/build-images.sh",
            built.display()
        ),
        Err(e) => eprintln!(
            "not compared with the dist build ({}: {e})",
            built.display()
        ),
    }

    // It runs with an empty environment, from a root holding only itself.
    let root = tempfile::tempdir().expect("temp dir");
    let path = root.path().join(name);
    std::fs::write(&path, &binary.data).expect("extract the binary");
    set_mode(&path, binary.mode);
    let out = run_ok(Command::new(&path).arg("--version").env_clear());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{name} {version}\n")
    );
    let help = run_ok(Command::new(&path).arg("--help").env_clear());
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("Usage:"),
        "--help: {help:?}"
    );
    run_in_empty_root(root.path(), &entrypoint, version);

    ImageSummary {
        reference,
        binary_bytes: binary.data.len() as u64,
        layer_bytes: layout.layers()[0]["size"].as_u64().unwrap_or_default(),
    }
}

/// `chroot ROOT ENTRYPOINT --version` with an empty environment: no library,
/// no /etc, no /proc. Root may chroot; anyone else does it in a user namespace
/// of their own. A machine that allows neither says so and skips this one step
/// (the binary has already run with an empty environment).
fn run_in_empty_root(root: &Path, entrypoint: &str, version: &str) {
    let root = root.to_string_lossy();
    let chroot = ["/usr/sbin/chroot", &root, entrypoint, "--version"];
    let in_namespace = [
        &["/usr/bin/unshare", "--user", "--map-root-user"][..],
        &chroot[..],
    ]
    .concat();
    let mut refusals = Vec::new();
    for argv in [&chroot[..], &in_namespace[..]] {
        let out = Command::new(argv[0])
            .args(&argv[1..])
            .env_clear()
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(out) if out.status.success() => {
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert!(stdout.ends_with(&format!(" {version}\n")), "{stdout:?}");
                return;
            }
            // chroot's own codes: 126 the command cannot run, 127 it is not
            // found (as when a dynamic binary's interpreter is missing).
            Ok(out) if matches!(out.status.code(), Some(126 | 127)) => panic!(
                "{entrypoint} does not start in a root holding only itself: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Ok(out) => refusals.push(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
            Err(e) => refusals.push(format!("{}: {e}", argv[0])),
        }
    }
    eprintln!(
        "skipped the run in an empty root (chroot is not allowed here): {}",
        refusals.join("; ")
    );
}

fn run_ok(command: &mut Command) -> Output {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
