//! The sans-IO core of dvip.
//!
//! This crate holds no networking code, reads no clock, starts no threads and draws no
//! randomness of its own: the daemon, the simulator and the offline planner all feed it the
//! same inputs and get the same decisions back. `clippy.toml` beside this crate forbids the
//! clock and the unordered collections so the compiler keeps that promise.
//!
//! What lives here now is the vocabulary every other crate speaks: a [`ManagedAddress`] is one
//! DuraVIP address as one node's configuration describes it, the unit the election assigns an
//! owner to. The election and the node state machine build on it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod entity;

pub use entity::{Follow, ManagedAddress, PlumbHint, DURAVIP_ADDRESS_COUNT_MAX};
