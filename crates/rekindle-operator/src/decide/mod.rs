//! Pure decisions: no I/O, no clock reads (time is passed in).

pub mod annotations;
pub mod decision;
pub mod duration;
