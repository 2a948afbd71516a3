//! A real Kubernetes control plane on loopback: etcd, kube-apiserver and
//! kube-controller-manager 1.20.2, as built by `scripts/provision-k8s.sh`.
//!
//! There is no kubelet and no scheduler: objects behave as on a real cluster
//! (watches, resourceVersions, RBAC, Deployments rolling out new ReplicaSets)
//! but pods stay Pending.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use tempfile::TempDir;

use crate::binaries::{self, MissingBinary};
use crate::certs::{self, Pki};
use crate::ports::free_ports;
use crate::process::Process;

// The sources of [`Error`]'s variants, nameable by callers.
pub use crate::certs::Error as CertsError;
pub use crate::process::SpawnError;

/// The ServiceAccount token issuer, and the audience tokens are minted for.
const ISSUER: &str = "https://kubernetes.default.svc";
/// Generous: on 2 busy cores with tests running in parallel, a cold
/// apiserver can take half a minute to pass `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// A single probe must not hang the wait loop on a half-open connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const LOG_TAIL_LINES: usize = 30;
/// Lifetime of minted ServiceAccount tokens: longer than any test.
const TOKEN_SECONDS: i64 = 3600;

/// Why the control plane could not be started, restarted or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A binary has not been provisioned.
    #[error(transparent)]
    Missing(#[from] MissingBinary),
    /// Setting up files or ports failed.
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: io::Error,
    },
    /// Key or certificate generation failed.
    #[error("generating keys and certificates: {0}")]
    Certs(#[from] CertsError),
    /// A process could not be started at all.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// A process died while the control plane waited for it.
    #[error(
        "{name} exited ({status}) while waiting for {waiting_for}; end of its log:\n{log_tail}"
    )]
    Exited {
        name: &'static str,
        status: ExitStatus,
        waiting_for: &'static str,
        log_tail: String,
    },
    /// A component never became ready.
    #[error(
        "timed out after {timeout:?} waiting for {waiting_for} (last error: {last_error}); \
         end of the logs:\n{log_tail}"
    )]
    Timeout {
        waiting_for: &'static str,
        timeout: Duration,
        last_error: String,
        log_tail: String,
    },
    /// A kubeconfig written by this module could not be loaded.
    #[error("loading the kubeconfig: {0}")]
    Kubeconfig(#[from] KubeconfigError),
    /// An API request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// A TokenRequest came back without a token.
    #[error("the TokenRequest for {namespace}/{name} returned no token")]
    NoToken { namespace: String, name: String },
}

fn io_error(context: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io { context, source }
}

/// A running etcd + kube-apiserver + kube-controller-manager.
///
/// Dropping it kills the three processes by PID and removes its temporary
/// directory (data, keys, logs), also when a test panics.
pub struct ControlPlane {
    etcd: Process,
    apiserver: Process,
    controller_manager: Process,
    url: String,
    ca_pem: Vec<u8>,
    kubeconfig: PathBuf,
    client: kube::Client,
    kubeconfigs_written: AtomicUsize,
    // Last, so the processes are gone before their files are removed.
    dir: TempDir,
}

impl ControlPlane {
    /// Starts etcd, kube-apiserver (RBAC, a static admin token, a serving
    /// certificate from a throwaway CA, ServiceAccount token signing) and
    /// kube-controller-manager on free loopback ports, and waits until the
    /// apiserver passes `/readyz` and the controller-manager has created the
    /// `default` ServiceAccount.
    pub async fn start() -> Result<Self, Error> {
        let etcd_bin = binaries::locate("etcd")?;
        let apiserver_bin = binaries::locate("kube-apiserver")?;
        let controller_manager_bin = binaries::locate("kube-controller-manager")?;

        let dir = tempfile::Builder::new()
            .prefix("rekindle-testenv-")
            .tempdir()
            .map_err(io_error("creating the temporary directory"))?;
        let root = dir.path();
        let pki_dir = root.join("pki");
        std::fs::create_dir(&pki_dir).map_err(io_error("creating the pki directory"))?;
        let pki = Pki::generate(&pki_dir)?;

        let [etcd_client_port, etcd_peer_port, apiserver_port] =
            free_ports().map_err(io_error("finding free loopback ports"))?;
        let url = format!("https://127.0.0.1:{apiserver_port}");

        let admin_token = certs::random_token().map_err(io_error("making the admin token"))?;
        let token_file = root.join("tokens.csv");
        std::fs::write(
            &token_file,
            format!("{admin_token},admin,admin,system:masters\n"),
        )
        .map_err(io_error("writing the token file"))?;
        let admin_kubeconfig = kubeconfig_text(&url, &pki.ca_pem, "admin", &admin_token);
        let kubeconfig = root.join("kubeconfig");
        std::fs::write(&kubeconfig, &admin_kubeconfig)
            .map_err(io_error("writing the kubeconfig"))?;

        let etcd_client_url = format!("http://127.0.0.1:{etcd_client_port}");
        let etcd_peer_url = format!("http://127.0.0.1:{etcd_peer_port}");
        let etcd_args = args([
            "--name=default".into(),
            format!("--data-dir={}", root.join("etcd").display()),
            format!("--listen-client-urls={etcd_client_url}"),
            format!("--advertise-client-urls={etcd_client_url}"),
            format!("--listen-peer-urls={etcd_peer_url}"),
            format!("--initial-advertise-peer-urls={etcd_peer_url}"),
            format!("--initial-cluster=default={etcd_peer_url}"),
        ]);
        let apiserver_args = args([
            format!("--etcd-servers={etcd_client_url}"),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={apiserver_port}"),
            format!("--tls-cert-file={}", pki.serving_cert.display()),
            format!("--tls-private-key-file={}", pki.serving_key.display()),
            format!("--token-auth-file={}", token_file.display()),
            "--authorization-mode=RBAC".into(),
            format!(
                "--service-account-key-file={}",
                pki.service_account_pub.display()
            ),
            format!(
                "--service-account-signing-key-file={}",
                pki.service_account_key.display()
            ),
            format!("--service-account-issuer={ISSUER}"),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            // Without a token controller, admission would reject every pod for
            // lacking a ServiceAccount token secret.
            "--disable-admission-plugins=ServiceAccount".into(),
        ]);
        let controller_manager_args = args([
            format!("--kubeconfig={}", kubeconfig.display()),
            "--leader-elect=false".into(),
            format!(
                "--service-account-private-key-file={}",
                pki.service_account_key.display()
            ),
            format!("--root-ca-file={}", pki.ca_cert.display()),
            "--use-service-account-credentials=false".into(),
            // Legacy token Secrets are not needed: tokens come from TokenRequest.
            "--controllers=*,-serviceaccount-token".into(),
            "--secure-port=0".into(),
            "--port=0".into(),
        ]);

        // Each process is killed by its own Drop if a later step fails.
        let mut etcd = Process::spawn("etcd", &etcd_bin, etcd_args, root.join("etcd.log"))?;
        let mut apiserver = Process::spawn(
            "kube-apiserver",
            &apiserver_bin,
            apiserver_args,
            root.join("kube-apiserver.log"),
        )?;
        let client = client_from_kubeconfig(&admin_kubeconfig).await?;
        wait_for(
            "kube-apiserver /readyz",
            &mut [&mut etcd, &mut apiserver],
            || apiserver_ready(&client),
        )
        .await?;

        // Started only now: it gives up if the apiserver is not healthy soon.
        let mut controller_manager = Process::spawn(
            "kube-controller-manager",
            &controller_manager_bin,
            controller_manager_args,
            root.join("kube-controller-manager.log"),
        )?;
        wait_for(
            "kube-controller-manager to create the default ServiceAccount",
            &mut [&mut etcd, &mut apiserver, &mut controller_manager],
            || default_service_account_exists(&client),
        )
        .await?;

        Ok(Self {
            etcd,
            apiserver,
            controller_manager,
            url,
            ca_pem: pki.ca_pem,
            kubeconfig,
            client,
            kubeconfigs_written: AtomicUsize::new(0),
            dir,
        })
    }

    /// A client authenticated as `admin` (group `system:masters`).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A kubeconfig file for the admin client (for child processes: set `KUBECONFIG`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The apiserver's URL, `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The PEM of the CA that signed the apiserver's serving certificate.
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }

    /// The temporary directory holding data, keys and the processes' logs
    /// (`etcd.log`, `kube-apiserver.log`, `kube-controller-manager.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Mints a token for the ServiceAccount `namespace/name` (which must
    /// exist) through the TokenRequest API.
    pub async fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<String, Error> {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client(), namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![ISSUER.to_owned()],
                expiration_seconds: Some(TOKEN_SECONDS),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        let response = accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await?;
        response
            .status
            .map(|status| status.token)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| Error::NoToken {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })
    }

    /// A client that authenticates with `token`, so a test runs with exactly
    /// that identity's RBAC.
    pub async fn client_for_token(&self, token: &str) -> Result<kube::Client, Error> {
        client_from_kubeconfig(&kubeconfig_text(&self.url, &self.ca_pem, "user", token)).await
    }

    /// Writes a kubeconfig that authenticates with `token` and returns its
    /// path (inside [`dir`](Self::dir)), for child processes.
    pub fn kubeconfig_for_token(&self, token: &str) -> Result<PathBuf, Error> {
        let n = self.kubeconfigs_written.fetch_add(1, Ordering::Relaxed);
        let path = self.dir().join(format!("kubeconfig-{n}"));
        std::fs::write(
            &path,
            kubeconfig_text(&self.url, &self.ca_pem, "user", token),
        )
        .map_err(io_error("writing a kubeconfig"))?;
        Ok(path)
    }

    /// Kills kube-apiserver and starts it again on the same port with the same
    /// etcd, then waits for `/readyz`. Stored objects survive; open
    /// connections and watches break, as in an apiserver crash or rollout.
    pub async fn restart_apiserver(&mut self) -> Result<(), Error> {
        self.apiserver.restart()?;
        self.wait_ready("kube-apiserver /readyz after its restart")
            .await
    }

    /// Kills etcd and starts it again with the same ports and data directory,
    /// then waits until the apiserver is ready again.
    pub async fn restart_etcd(&mut self) -> Result<(), Error> {
        self.etcd.restart()?;
        self.wait_ready("kube-apiserver /readyz after an etcd restart")
            .await
    }

    async fn wait_ready(&mut self, waiting_for: &'static str) -> Result<(), Error> {
        let client = self.client.clone();
        wait_for(
            waiting_for,
            &mut [&mut self.etcd, &mut self.apiserver],
            || apiserver_ready(&client),
        )
        .await
    }
}

impl std::fmt::Debug for ControlPlane {
    // kube::Client is not Debug; the URL and directory identify the instance.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("url", &self.url)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // Clients first, then the apiserver, then its storage.
        self.controller_manager.kill();
        self.apiserver.kill();
        self.etcd.kill();
    }
}

fn args<const N: usize>(args: [String; N]) -> Vec<OsString> {
    args.into_iter().map(OsString::from).collect()
}

/// A kubeconfig for `url`, trusting `ca_pem`, authenticating with `token`.
/// JSON is valid YAML, and serde_json does the quoting.
fn kubeconfig_text(url: &str, ca_pem: &[u8], user: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "rekindle-testenv", "cluster": {
            "server": url,
            "certificate-authority-data": ca,
        }}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "rekindle-testenv", "context": {
            "cluster": "rekindle-testenv",
            "user": user,
            "namespace": "default",
        }}],
        "current-context": "rekindle-testenv",
    })
    .to_string()
}

async fn client_from_kubeconfig(text: &str) -> Result<kube::Client, Error> {
    let kubeconfig = Kubeconfig::from_yaml(text)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// Polls `probe` until it succeeds, failing early if one of `watched` exits
/// and with the tail of their logs on timeout.
async fn wait_for<F, Fut>(
    waiting_for: &'static str,
    watched: &mut [&mut Process],
    mut probe: F,
) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let last_error = match tokio::time::timeout(PROBE_TIMEOUT, probe()).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(err)) => err,
            Err(_) => format!("no answer within {PROBE_TIMEOUT:?}"),
        };
        for process in watched.iter_mut() {
            if let Some(status) = process.exited() {
                return Err(Error::Exited {
                    name: process.name(),
                    status,
                    waiting_for,
                    log_tail: process.log_tail(LOG_TAIL_LINES),
                });
            }
        }
        if Instant::now() >= deadline {
            let log_tail = watched
                .iter()
                .map(|p| format!("--- {}:\n{}", p.name(), p.log_tail(LOG_TAIL_LINES)))
                .collect::<Vec<_>>()
                .join("\n");
            return Err(Error::Timeout {
                waiting_for,
                timeout: READY_TIMEOUT,
                last_error,
                log_tail,
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn apiserver_ready(client: &kube::Client) -> Result<(), String> {
    let request = http::Request::get("/readyz")
        .body(Vec::new())
        .map_err(|err| err.to_string())?;
    client
        .request_text(request)
        .await
        .map(drop)
        .map_err(|err| err.to_string())
}

async fn default_service_account_exists(client: &kube::Client) -> Result<(), String> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    match accounts.get_opt("default").await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err("not created yet".to_owned()),
        Err(err) => Err(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn kubeconfig_text_loads_with_server_ca_and_token() {
        let text = kubeconfig_text("https://127.0.0.1:6443", b"PEM", "someone", "t0k\"en");
        let kubeconfig = Kubeconfig::from_yaml(&text).expect("valid kubeconfig");
        let cluster = kubeconfig.clusters[0].cluster.as_ref().expect("cluster");
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(cluster.certificate_authority_data.as_deref(), Some("UEVN"));
        assert_eq!(
            kubeconfig.current_context.as_deref(),
            Some("rekindle-testenv")
        );
    }
}
