//! The snapshot reader on generated directory trees: files, nested paths,
//! symlinks inside and out of the root, loops, FIFOs, `..data` variants.
//!
//! Checks that a read never panics or hangs, that an accepted snapshot holds
//! no file from outside the root, no name starting with `..` and no `..`
//! component, that every value is the content of the file it names, that the
//! limits hold, and that reading the same tree twice gives the same digest.
#![no_main]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rekindle::{Layout, ReadLimits, Snapshot};

/// Content of the one file outside the root: no value may ever equal it.
const OUTSIDE: &[u8] = b"outside-the-root";

#[derive(Arbitrary, Debug)]
struct Tree {
    entries: Vec<Entry>,
    /// Small limits, to reach the limit paths; `None` for the defaults.
    limits: Option<(u8, u16)>,
}

#[derive(Arbitrary, Debug)]
enum Entry {
    File { path: RelPath, size: u8 },
    Dir(RelPath),
    Link { path: RelPath, target: Target },
    Fifo(RelPath),
}

#[derive(Arbitrary, Debug)]
struct RelPath(Vec<Name>);

#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Free(String),
}

/// Names the kubelet writes and people use, so that the fuzzer reaches them.
const KNOWN: &[&str] = &[
    "..data",
    "..2026_12_07_10_00_00.000000001",
    "..2026_12_07_10_00_00.000000002",
    "..data_tmp",
    "app.yaml",
    "config.json",
    "nested",
    "key",
    ".hidden",
    "...",
    ".",
    "..",
];

#[derive(Arbitrary, Debug)]
enum Target {
    /// Relative to the link's directory.
    Relative(RelPath),
    /// An absolute path inside the root.
    InsideAbsolute(RelPath),
    /// The directory beside the root, holding one file.
    Outside,
    /// The file beside the root.
    OutsideFile,
    /// `..` repeated.
    Up(u8),
    Root,
    Nowhere,
}

impl RelPath {
    fn render(&self) -> Option<PathBuf> {
        let mut path = PathBuf::new();
        for name in self.0.iter().take(4) {
            let text = match name {
                Name::Known(i) => KNOWN[usize::from(*i) % KNOWN.len()].to_owned(),
                Name::Free(s) => s
                    .chars()
                    .filter(|c| *c != '/' && *c != '\0')
                    .take(24)
                    .collect(),
            };
            if text.is_empty() || text == "." || text == ".." {
                // Kept out of created paths: they would write outside the
                // root or onto an existing directory. (They still appear as
                // symlink targets, see `Target::Up`.)
                return None;
            }
            path.push(text);
        }
        (!path.as_os_str().is_empty()).then_some(path)
    }
}

fn content(path: &Path, size: u8) -> Vec<u8> {
    // Distinct per path, so that a value read from the wrong file shows.
    let mut bytes = path.as_os_str().as_encoded_bytes().to_vec();
    bytes.extend(std::iter::repeat_n(b'x', usize::from(size)));
    bytes
}

fuzz_target!(|tree: Tree| {
    let base = tempfile::tempdir().expect("tempdir");
    let root = base.path().join("root");
    let outside = base.path().join("outside");
    fs::create_dir(&root).expect("root");
    fs::create_dir(&outside).expect("outside");
    fs::write(outside.join("file"), OUTSIDE).expect("outside file");
    fs::write(base.path().join("file"), OUTSIDE).expect("outside file");

    for entry in tree.entries.iter().take(24) {
        let Some(rel) = (match entry {
            Entry::File { path, .. } | Entry::Dir(path) | Entry::Fifo(path) => path.render(),
            Entry::Link { path, .. } => path.render(),
        }) else {
            continue;
        };
        let path = root.join(&rel);
        if let Some(parent) = path.parent() {
            // May fail (a file or a link is in the way): the entry is then skipped.
            if fs::create_dir_all(parent).is_err() {
                continue;
            }
        }
        // Never follow what is already there: `create_new` and friends fail on
        // an existing name, so nothing is written through a link or into a FIFO.
        let _ = match entry {
            Entry::File { size, .. } => fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .and_then(|mut f| std::io::Write::write_all(&mut f, &content(&rel, *size))),
            Entry::Dir(_) => fs::create_dir(&path),
            Entry::Fifo(_) => rustix::fs::mknodat(
                rustix::fs::CWD,
                &path,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o644),
                0,
            )
            .map_err(std::io::Error::from),
            Entry::Link { target, .. } => {
                let to = match target {
                    Target::Relative(p) => p.render().unwrap_or_else(|| PathBuf::from("x")),
                    Target::InsideAbsolute(p) => root.join(p.render().unwrap_or_default()),
                    Target::Outside => outside.clone(),
                    Target::OutsideFile => outside.join("file"),
                    Target::Up(n) => (0..=n % 6).map(|_| "..").collect(),
                    Target::Root => root.clone(),
                    Target::Nowhere => PathBuf::from("/nonexistent/rekindle-fuzz"),
                };
                symlink(to, &path)
            }
        };
    }

    let limits = match tree.limits {
        None => ReadLimits::default(),
        Some((entries, bytes)) => ReadLimits {
            max_entries: usize::from(entries) + 1,
            max_volume_bytes: u64::from(bytes) + 1,
        },
    };
    let Ok((snapshot, layout)) = Snapshot::read_volume(&root, &limits) else {
        return;
    };

    let data_dir = match layout {
        Layout::Kubelet => root.join("..data"),
        Layout::Plain => root.clone(),
    };
    let mut total = 0u64;
    let mut seen = BTreeMap::new();
    for (key, value) in snapshot.iter() {
        assert!(!key.is_empty(), "empty key");
        for part in key.split('/') {
            assert!(!part.is_empty(), "empty component in {key:?}");
            assert!(!part.starts_with(".."), "hidden component in {key:?}");
        }
        assert_ne!(value, OUTSIDE, "{key:?} was read from outside the root");
        let on_disk = fs::read(data_dir.join(key)).expect("a key names a readable file");
        assert_eq!(value, on_disk.as_slice(), "{key:?} differs from its file");
        total += value.len() as u64;
        seen.insert(key.to_owned(), ());
    }
    assert!(total <= limits.max_volume_bytes, "volume limit exceeded");
    assert_eq!(seen.len(), snapshot.len());

    let (again, layout_again) =
        Snapshot::read_volume(&root, &limits).expect("a tree that read once reads again");
    assert_eq!(layout, layout_again);
    assert_eq!(
        snapshot.digest(),
        again.digest(),
        "same tree, different digest"
    );
});
