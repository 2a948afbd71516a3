//! `rekindle-operator`: rolls workloads whose ConfigMaps or Secrets changed, a
//! drop-in for stakater/Reloader (SecretProviderClasses are not watched yet).
//!
//! Where things live:
//! - [`model`]: the nouns (source and workload identities, key use).
//! - `decide/`: every decision, pure and unit-tested: which workloads a source
//!   reaches (annotations, references), the value written (digests), the patch,
//!   and when (cooldown).
//! - `index/`: what the watches have told us, kept small (digests per key, not
//!   data), fed by watch events and queried without the API.
//! - `cluster/`: the edge: watch streams in, patches, events and the Lease out.

pub mod app;
pub mod cli;
pub mod cluster;
pub mod decide;
pub mod index;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod reconcile;
pub mod run;
pub mod server;
