//! Dev-only test environment for rekindle.
