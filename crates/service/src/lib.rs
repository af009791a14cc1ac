//! Process scaffolding shared by every role and the amphora agent (DESIGN.md §4, `service`).
//! It depends on no other rocta crate, so any crate may use it.
//!
//! Layout: `fs` (`atomic_write`: the one way rocta writes a file that must survive a crash
//! whole, with the mode it must have).

pub mod fs;

pub use fs::atomic_write;
