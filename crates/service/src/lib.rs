//! Process scaffolding shared by every role and the amphora agent (DESIGN.md §4, `service`).
//! It depends on no other rocta crate, so any crate may use it.
//!
//! Layout: `fs` (`atomic_write`: the one way rocta writes a file that must survive a crash
//! whole, with the mode it must have), `net` (`serve`: HTTP on a TCP listener with handshakes,
//! connections, idle time and accept errors bounded; the agent and the API use it), `tasks`
//! (`periodic`: the contract of periodic duties; `Tasks`: a process's named tasks, an early
//! exit or panic of one being a fault that ends the process non-zero).

pub mod fs;
pub mod metrics;
pub mod net;
pub mod tasks;

pub use fs::atomic_write;
