//! Config straight from the Kubernetes API (feature `kube`): one named ConfigMap or
//! Secret, watched through the API server, feeding the same snapshot, digest and reload
//! pipeline as a mounted directory.
//!
//! The kubelet projects a change into a pod's volume 60 to 120 seconds after it is made;
//! the API server has it at once. An object read here gives the same [`Snapshot`](crate::Snapshot) (and
//! so the same [`Digest`](crate::Digest)) as its volume would.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use rekindle::api::ObjectRef;
//! use rekindle::Reloadable;
//!
//! #[derive(serde::Deserialize)]
//! struct Settings {
//!     #[serde(rename = "LOG_LEVEL")]
//!     log_level: String,
//! }
//!
//! let client = kube::Client::try_default().await?;
//! let object = ObjectRef::config_map("app-config"); // the pod's own namespace
//! let config = Reloadable::<Settings>::builder().load_api(&client, &object).await?;
//! let _watch = config.watch_api(client, object); // every change, at once
//! println!("{}", config.current().log_level);
//! # Ok(())
//! # }
//! ```
//!
//! The credentials need `get`, `list` and `watch` on that one object, which RBAC can
//! restrict by name:
//!
//! ```yaml
//! apiVersion: rbac.authorization.k8s.io/v1
//! kind: Role
//! metadata: {name: read-app-config}
//! rules:
//!   - apiGroups: [""]
//!     resources: ["configmaps"]        # or "secrets"
//!     resourceNames: ["app-config"]
//!     verbs: ["get", "list", "watch"]
//! ```
//!
//! The watch lists and watches with the field selector `metadata.name=NAME`, which the
//! API server authorizes against `resourceNames`.

mod convert;
mod error;
mod object;
mod tracker;
mod watch;

pub use convert::{config_map_digest, config_map_snapshot, secret_digest, secret_snapshot};
pub use error::ApiError;
pub use object::{ObjectKind, ObjectRef, ObjectRefError};
pub use watch::{ApiEvent, ApiWatcher, events, get, resolve};
