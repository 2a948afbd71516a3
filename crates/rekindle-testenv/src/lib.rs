//! Dev-only test environment for rekindle: the real Kubernetes parts its tests
//! run against.
//!
//! - [`KubeletWriter`] writes a volume directory through the kubelet's own
//!   `AtomicWriter` (the `..data` → `..<timestamp>` symlink swap), so watcher
//!   tests see exactly what a pod sees.
//! - [`ControlPlane`] (feature `cluster`, on by default) runs etcd,
//!   kube-apiserver and kube-controller-manager on loopback ports.
//!
//! - [`tools`] finds `helm` and `kubectl` for the tests of the deployment
//!   manifests (`scripts/provision-helm.sh`).
//! - [`image`], [`elf`] and [`image_check`] (feature `image`) read the OCI
//!   image layouts of `scripts/build-images.sh`, check that a binary is
//!   static, and hold the checks every rekindle image passes.
//!
//! The control plane and the writer use binaries built once by
//! `scripts/provision-k8s.sh` and cached in `~/.cache/rekindle/k8s-1.20.2/`
//! (see [`binaries`]).

pub mod binaries;
#[cfg(feature = "image")]
pub mod elf;
#[cfg(feature = "image")]
pub mod image;
#[cfg(feature = "image")]
pub mod image_check;
pub mod kubelet_writer;
pub mod tools;

#[cfg(feature = "cluster")]
mod certs;
#[cfg(feature = "cluster")]
pub mod control_plane;
#[cfg(feature = "cluster")]
pub mod fault_proxy;
#[cfg(feature = "cluster")]
mod ports;
#[cfg(feature = "cluster")]
mod process;

pub use binaries::MissingBinary;
#[cfg(feature = "cluster")]
pub use control_plane::ControlPlane;
#[cfg(feature = "cluster")]
pub use fault_proxy::{Fault, FaultProxy};
pub use kubelet_writer::{FileProjection, KubeletWriter};
pub mod docs;
