//! Keys and certificates for the control plane, made with the `openssl` CLI
//! (installed by `scripts/provision-k8s.sh`).
//!
//! A throwaway CA signs the apiserver's serving certificate for 127.0.0.1 and
//! localhost, so clients verify TLS for real instead of skipping verification.
//! A separate RSA key signs ServiceAccount tokens.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why key or certificate generation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("running openssl (installed by scripts/provision-k8s.sh): {0}")]
    Spawn(#[source] io::Error),
    #[error("openssl {step} failed: {stderr}")]
    Failed { step: &'static str, stderr: String },
    #[error("reading generated {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The files of the control plane's PKI, all inside one directory.
#[derive(Debug)]
pub(crate) struct Pki {
    pub ca_cert: PathBuf,
    /// The CA certificate's PEM, for kubeconfigs.
    pub ca_pem: Vec<u8>,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub service_account_key: PathBuf,
    pub service_account_pub: PathBuf,
}

impl Pki {
    pub(crate) fn generate(dir: &Path) -> Result<Self, Error> {
        let path = |name: &str| dir.join(name);
        let pki = Self {
            ca_cert: path("ca.crt"),
            ca_pem: Vec::new(),
            serving_cert: path("apiserver.crt"),
            serving_key: path("apiserver.key"),
            service_account_key: path("sa.key"),
            service_account_pub: path("sa.pub"),
        };
        let ca_key = path("ca.key");
        // P-256 keys: generated instantly, and accepted by Go and rustls alike.
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        openssl(
            "CA certificate",
            &["req", "-x509", "-nodes", "-days", "2"],
            &ec,
            &[
                "-subj",
                "/CN=rekindle-testenv-ca",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            &[("-keyout", &ca_key), ("-out", &pki.ca_cert)],
        )?;
        openssl(
            "serving certificate",
            &["req", "-x509", "-nodes", "-days", "2"],
            &ec,
            &[
                "-subj",
                "/CN=kube-apiserver",
                "-addext",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-addext",
                "keyUsage=critical,digitalSignature",
                "-addext",
                "extendedKeyUsage=serverAuth",
            ],
            &[
                ("-CA", &pki.ca_cert),
                ("-CAkey", &ca_key),
                ("-keyout", &pki.serving_key),
                ("-out", &pki.serving_cert),
            ],
        )?;
        // RSA for token signing: RS256 is what every Kubernetes release accepts.
        openssl(
            "service-account key",
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ],
            &[],
            &[],
            &[("-out", &pki.service_account_key)],
        )?;
        openssl(
            "service-account public key",
            &["pkey", "-pubout"],
            &[],
            &[],
            &[
                ("-in", &pki.service_account_key),
                ("-out", &pki.service_account_pub),
            ],
        )?;
        let ca_pem = std::fs::read(&pki.ca_cert).map_err(|source| Error::Read {
            path: pki.ca_cert.clone(),
            source,
        })?;
        Ok(Self { ca_pem, ..pki })
    }
}

fn openssl(
    step: &'static str,
    command: &[&str],
    key: &[&str],
    options: &[&str],
    files: &[(&str, &Path)],
) -> Result<(), Error> {
    let mut cmd = Command::new("openssl");
    cmd.args(command).args(key).args(options);
    for (flag, path) in files {
        cmd.arg(flag).arg(path);
    }
    let output = cmd.output().map_err(Error::Spawn)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Failed {
            step,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// A random hex token for the static admin credential.
pub(crate) fn random_token() -> io::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_certificate_chains_to_the_ca_for_loopback() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = Pki::generate(dir.path()).expect("generate PKI");
        assert!(pki.ca_pem.starts_with(b"-----BEGIN CERTIFICATE-----"));
        let verify = Command::new("openssl")
            .args(["verify", "-verify_ip", "127.0.0.1", "-CAfile"])
            .arg(&pki.ca_cert)
            .arg(&pki.serving_cert)
            .output()
            .expect("run openssl verify");
        assert!(
            verify.status.success(),
            "{}",
            String::from_utf8_lossy(&verify.stderr)
        );
        for file in [
            &pki.serving_key,
            &pki.service_account_key,
            &pki.service_account_pub,
        ] {
            assert!(std::fs::metadata(file).expect("generated").len() > 0);
        }
    }

    #[test]
    fn tokens_differ() {
        let a = random_token().expect("token");
        let b = random_token().expect("token");
        assert_eq!(a.len(), 48);
        assert_ne!(a, b);
    }
}
