//! Pure decisions: no I/O, no clock reads (time is passed in).

pub mod annotations;
pub mod cooldown;
pub mod decision;
pub mod duration;
pub mod leadership;
pub mod patch;
pub mod references;
