//! Pure decisions: no I/O, no clock reads (time is passed in).

pub mod annotations;
pub mod cooldown;
pub mod decision;
pub mod digest;
pub mod duration;
pub mod envname;
pub mod fleet;
pub mod leadership;
pub mod patch;
pub mod pause;
pub mod plan;
pub mod references;
pub mod throttle;
