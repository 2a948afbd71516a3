//! Reading the OCI image layouts that `scripts/build-images.sh` writes, to test
//! what an image really holds.
//!
//! [`Layout::open`] finds a tag in a layout's `index.json` and reads its manifest
//! and config, checking every blob against its digest and size, so a test looks
//! at exactly what a registry would receive. [`Layout::layer`] unpacks a layer
//! (checking its uncompressed digest against the config's `diff_ids`) into its
//! entries. [`Dockerfile`] reads the few instructions of the one-binary
//! Dockerfiles in `images/`, so that the layout and a `docker build` of the same
//! file can be compared.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// Environment variable naming the directory of image layouts, instead of
/// [`images_dir`]'s default.
pub const IMAGES_DIR_ENV: &str = "REKINDLE_IMAGES_DIR";

const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const TAR_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// Why an image layout could not be read, or is not what it claims.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No layout at all: the images were not built.
    #[error(
        "no OCI image layout at {}: run scripts/build-images.sh (it builds the dist binaries and \
         the images into $CARGO_TARGET_DIR/images, default target/images)",
        dir.display()
    )]
    Missing { dir: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not valid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {what}", dir.display())]
    Invalid { dir: PathBuf, what: String },
    #[error("{}: no manifest tagged {tag:?} (tags: {tags:?}); rebuild with scripts/build-images.sh", dir.display())]
    NoTag {
        dir: PathBuf,
        tag: String,
        tags: Vec<String>,
    },
    #[error("blob {digest}: {what}")]
    Blob { digest: String, what: String },
}

/// The directory holding the image layouts: `$REKINDLE_IMAGES_DIR`, else
/// `$CARGO_TARGET_DIR/images`, else `target/images` in the workspace.
pub fn images_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var(IMAGES_DIR_ENV) {
        return PathBuf::from(dir);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = match var("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    };
    target.join("images")
}

/// One tagged image of an OCI image layout, with its manifest and config read
/// and checked.
#[derive(Debug)]
pub struct Layout {
    dir: PathBuf,
    manifest: Value,
    config: Value,
}

/// One entry of a layer's tar archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub data: Vec<u8>,
}

/// What a tar entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Directory,
    Symlink,
    /// Anything else (hard link, device, PAX or GNU extension header …): the
    /// tar type byte.
    Other(u8),
}

impl Layout {
    /// Opens the image tagged `tag` in the layout at `dir`.
    pub fn open(dir: &Path, tag: &str) -> Result<Layout, Error> {
        let layout_file = dir.join("oci-layout");
        if !layout_file.is_file() {
            return Err(Error::Missing {
                dir: dir.to_owned(),
            });
        }
        let invalid = |what: String| Error::Invalid {
            dir: dir.to_owned(),
            what,
        };
        let marker = read_json(&layout_file)?;
        if marker["imageLayoutVersion"] != "1.0.0" {
            return Err(invalid(format!("oci-layout is {marker}")));
        }
        let index = read_json(&dir.join("index.json"))?;
        let manifests = index["manifests"]
            .as_array()
            .ok_or_else(|| invalid("index.json has no manifests".into()))?;
        let ref_name = |m: &Value| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .map(str::to_owned)
        };
        let descriptor = manifests
            .iter()
            .find(|m| ref_name(m).as_deref() == Some(tag))
            .ok_or_else(|| Error::NoTag {
                dir: dir.to_owned(),
                tag: tag.to_owned(),
                tags: manifests.iter().filter_map(ref_name).collect(),
            })?;
        let mut layout = Layout {
            dir: dir.to_owned(),
            manifest: Value::Null,
            config: Value::Null,
        };
        layout.manifest = layout.json_blob(descriptor)?;
        layout.config = layout.json_blob(&layout.manifest["config"])?;
        Ok(layout)
    }

    /// The image manifest.
    pub fn manifest(&self) -> &Value {
        &self.manifest
    }

    /// The image config (`config.User`, `config.Entrypoint`, `config.Labels`, …).
    pub fn config(&self) -> &Value {
        &self.config
    }

    /// The layer descriptors of the manifest.
    pub fn layers(&self) -> &[Value] {
        self.manifest["layers"]
            .as_array()
            .map_or(&[], Vec::as_slice)
    }

    /// The entries of layer `index`, in archive order.
    pub fn layer(&self, index: usize) -> Result<Vec<Entry>, Error> {
        let descriptor = self.layers().get(index).ok_or_else(|| Error::Invalid {
            dir: self.dir.clone(),
            what: format!("no layer {index}"),
        })?;
        let digest = descriptor["digest"].as_str().unwrap_or_default().to_owned();
        let blob_error = |what: String| Error::Blob {
            digest: digest.clone(),
            what,
        };
        let stored = self.blob(descriptor)?;
        let tar = match descriptor["mediaType"].as_str() {
            Some(GZIP_LAYER) => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(stored.as_slice())
                    .read_to_end(&mut out)
                    .map_err(|e| blob_error(format!("not gzip: {e}")))?;
                out
            }
            Some(TAR_LAYER) => stored,
            other => return Err(blob_error(format!("unexpected media type {other:?}"))),
        };
        let diff_id = format!("sha256:{}", hex(&Sha256::digest(&tar)));
        let expected = &self.config["rootfs"]["diff_ids"][index];
        if expected != &Value::String(diff_id.clone()) {
            return Err(blob_error(format!(
                "uncompressed digest {diff_id} is not the config's diff_id {expected}"
            )));
        }
        read_tar(&tar).map_err(|e| blob_error(format!("not a tar archive: {e}")))
    }

    /// Reads the blob of `descriptor`, checking its digest and size.
    fn blob(&self, descriptor: &Value) -> Result<Vec<u8>, Error> {
        let digest = descriptor["digest"].as_str().unwrap_or_default();
        let blob_error = |what: String| Error::Blob {
            digest: digest.to_owned(),
            what,
        };
        let hex_digest = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| blob_error("not a sha256 digest".into()))?;
        let path = self.dir.join("blobs/sha256").join(hex_digest);
        let bytes = std::fs::read(&path).map_err(|source| Error::Io { path, source })?;
        let actual = hex(&Sha256::digest(&bytes));
        if actual != hex_digest {
            return Err(blob_error(format!("its content hashes to sha256:{actual}")));
        }
        if descriptor["size"].as_u64() != Some(bytes.len() as u64) {
            return Err(blob_error(format!(
                "{} bytes, the descriptor says {}",
                bytes.len(),
                descriptor["size"]
            )));
        }
        Ok(bytes)
    }

    fn json_blob(&self, descriptor: &Value) -> Result<Value, Error> {
        let bytes = self.blob(descriptor)?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            path: PathBuf::from(descriptor["digest"].as_str().unwrap_or_default()),
            source,
        })
    }
}

fn read_json(path: &Path) -> Result<Value, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: path.to_owned(),
        source,
    })
}

fn read_tar(bytes: &[u8]) -> std::io::Result<Vec<Entry>> {
    let mut archive = tar::Archive::new(bytes);
    let mut entries = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let header = entry.header();
        let kind = match header.entry_type() {
            tar::EntryType::Regular => EntryKind::File,
            tar::EntryType::Directory => EntryKind::Directory,
            tar::EntryType::Symlink => EntryKind::Symlink,
            other => EntryKind::Other(other.as_byte()),
        };
        let (mode, uid, gid) = (header.mode()?, header.uid()?, header.gid()?);
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        entries.push(Entry {
            path,
            kind,
            mode,
            uid,
            gid,
            data,
        });
    }
    Ok(entries)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The instructions of a one-binary Dockerfile (`images/*/Dockerfile`) that end
/// up in the image config. Values are as written: `${VERSION}` stays unexpanded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dockerfile {
    pub from: String,
    pub user: String,
    pub entrypoint: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// `(source, destination)` of each COPY.
    pub copies: Vec<(String, String)>,
}

impl Dockerfile {
    /// Reads a Dockerfile that uses only `FROM`, `ARG`, `LABEL key="value"`,
    /// `COPY`, `USER` and an exec-form `ENTRYPOINT`, one per line; anything else
    /// is refused with its line number (the image build script reads the same
    /// subset).
    pub fn parse(text: &str) -> Result<Dockerfile, String> {
        let mut out = Dockerfile::default();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |what: &str| format!("line {}: {what}: {line}", number + 1);
            let (instruction, rest) = line.split_once(' ').ok_or_else(|| at("no argument"))?;
            let rest = rest.trim();
            match instruction {
                "FROM" => out.from = rest.to_owned(),
                "ARG" => {}
                "LABEL" => {
                    let (key, value) = rest.split_once('=').ok_or_else(|| at("no key=value"))?;
                    let value = value
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .ok_or_else(|| at("value not in double quotes"))?;
                    out.labels.insert(key.to_owned(), value.to_owned());
                }
                "COPY" => match rest.split_whitespace().collect::<Vec<_>>().as_slice() {
                    [source, destination] => out
                        .copies
                        .push(((*source).to_owned(), (*destination).to_owned())),
                    _ => return Err(at("COPY takes one source and one destination")),
                },
                "USER" => out.user = rest.to_owned(),
                "ENTRYPOINT" => {
                    out.entrypoint =
                        serde_json::from_str(rest).map_err(|_| at("not an exec-form list"))?;
                }
                _ => return Err(at("unsupported instruction")),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_layout_says_how_to_build_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = Layout::open(&dir.path().join("rekindle"), "0.1.0").expect_err("missing");
        assert!(matches!(err, Error::Missing { .. }), "{err}");
        assert!(err.to_string().contains("scripts/build-images.sh"), "{err}");
    }

    /// A layout with one image tagged `tag`: a config and one gzip layer.
    fn mk_layout(dir: &Path, tag: &str, layer_tar: &[u8]) -> Value {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).expect("blobs");
        let put = |bytes: &[u8]| {
            let digest = hex(&Sha256::digest(bytes));
            std::fs::write(blobs.join(&digest), bytes).expect("blob");
            json_descriptor(&digest, bytes.len())
        };
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, layer_tar).expect("gzip");
        let mut layer = put(&gz.finish().expect("gzip"));
        layer["mediaType"] = GZIP_LAYER.into();
        let config = serde_json::json!({
            "config": {"User": "65534:65534"},
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", hex(&Sha256::digest(layer_tar)))]},
        });
        let config = put(&serde_json::to_vec(&config).expect("json"));
        let manifest = serde_json::json!({"schemaVersion": 2, "config": config, "layers": [layer]});
        let mut manifest = put(&serde_json::to_vec(&manifest).expect("json"));
        manifest["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("marker");
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [manifest.clone()]});
        std::fs::write(dir.join("index.json"), index.to_string()).expect("index");
        manifest
    }

    fn json_descriptor(digest: &str, size: usize) -> Value {
        serde_json::json!({"digest": format!("sha256:{digest}"), "size": size})
    }

    fn mk_tar(name: &str, data: &[u8]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, name, data)
            .expect("append");
        builder.into_inner().expect("tar")
    }

    #[test]
    fn a_layout_is_read_and_checked() {
        let dir = tempfile::tempdir().expect("temp dir");
        mk_layout(dir.path(), "1.0", &mk_tar("app", b"\x7fELF"));
        let layout = Layout::open(dir.path(), "1.0").expect("valid layout");
        assert_eq!(layout.config()["config"]["User"], "65534:65534");
        let entries = layout.layer(0).expect("layer");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].path, "app");
        assert_eq!(entries[0].kind, EntryKind::File);
        assert_eq!(entries[0].mode, 0o755);
        assert_eq!(entries[0].data, b"\x7fELF");

        let err = Layout::open(dir.path(), "2.0").expect_err("no such tag");
        assert!(
            matches!(&err, Error::NoTag { tags, .. } if tags == &["1.0"]),
            "{err}"
        );
    }

    #[test]
    fn a_changed_blob_is_caught() {
        let dir = tempfile::tempdir().expect("temp dir");
        let manifest = mk_layout(dir.path(), "1.0", &mk_tar("app", b"x"));
        let digest = manifest["digest"].as_str().expect("digest");
        let path = dir
            .path()
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        let mut bytes = std::fs::read(&path).expect("manifest blob");
        bytes.push(b' ');
        std::fs::write(&path, bytes).expect("write");
        let err = Layout::open(dir.path(), "1.0").expect_err("tampered");
        assert!(matches!(err, Error::Blob { .. }), "{err}");
    }

    #[test]
    fn dockerfile_subset() {
        let file = Dockerfile::parse(
            "# comment\nFROM scratch\nARG VERSION=1\nLABEL a.b=\"x ${VERSION}\"\n\
             COPY target/app /app\nUSER 65534:65534\nENTRYPOINT [\"/app\"]\n",
        )
        .expect("valid");
        assert_eq!(file.from, "scratch");
        assert_eq!(file.user, "65534:65534");
        assert_eq!(file.entrypoint, ["/app"]);
        assert_eq!(file.labels["a.b"], "x ${VERSION}");
        assert_eq!(file.copies, [("target/app".into(), "/app".into())]);
        let err = Dockerfile::parse("FROM scratch\nRUN true\n").expect_err("RUN");
        assert!(err.starts_with("line 2: unsupported instruction"), "{err}");
    }
}
