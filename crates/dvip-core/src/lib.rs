//! The sans-IO core of dvip.
//!
//! This crate holds no networking code, reads no clock, starts no threads and draws no
//! randomness of its own: the daemon, the simulator and the offline planner all feed it the
//! same inputs and get the same decisions back. `clippy.toml` beside this crate forbids the
//! clock and the unordered collections so the compiler keeps that promise.
//!
//! - [`entity`]: what a node's configuration says about each DuraVIP address.
//! - [`election`]: the pure function from what the members of a view announced to a
//!   [`Plan`] of owners and marks.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod election;
pub mod entity;

pub use election::{elect, Decision, Marks, Member, Plan, Reason};
pub use entity::{Entity, Follow, ManagedAddress, NodeName, PlumbHint, DURAVIP_ADDRESS_COUNT_MAX};
