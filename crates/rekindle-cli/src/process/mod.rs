//! Our child processes: spawning and reaping them, and running a user's command line.

pub mod children;
pub mod shell;

pub use children::{Children, Exit, Running};
