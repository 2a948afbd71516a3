//! The edge: everything that talks to the API server. Watch streams come in and
//! are reduced to index updates at once (the objects are dropped there);
//! patches, created Jobs, Events and the Lease go out.

pub mod errors;
pub mod hash_key;
pub mod lease;
pub mod rollout;
pub mod streams;
pub mod watch;
