//! Pure decisions: no I/O, no clock reads (time is passed in).

pub mod patch;
pub mod references;
