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
//! - [`wire`]: the messages members multicast, versioned and bounds-checked.
//! - [`node`]: one member's state machine: the view, the replicated holdings, the handover.
//!
//! # Driving a [`Node`]
//!
//! Like quinn-proto's `Connection`, a node is driven from outside and never blocks:
//!
//! 1. At each wake-up call [`Node::handle_timeout`] with the current time first, then any of
//!    [`Node::handle_view`] (the bus installed a view), [`Node::handle_message`] (the bus
//!    delivered a message, in agreed order, the node's own included),
//!    [`Node::handle_command`] (the operator asked for something) and
//!    [`Node::handle_config`] (the configuration was reloaded), and the outcome of plumbing
//!    through [`Node::handle_plumb_failed`], [`Node::handle_plumb_done`] and
//!    [`Node::handle_interface_ready`]. With leases, the detector's verdicts too:
//!    [`Node::handle_promised`], [`Node::handle_takeover`], [`Node::handle_end_epoch`] and
//!    [`Node::handle_lease_lapsed`]; renew the kernel's lease only while
//!    [`Node::may_answer`], and tell the detector every [`Event::EpochMoved`].
//! 2. After each input, drain [`Node::poll_action`] until `None` and carry the actions out
//!    in order (they are already ordered: release before acquire, unplumb before telling
//!    the cluster), and drain [`Node::poll_event`] for logs and the console.
//! 3. Call [`Node::handle_timeout`] again no later than [`Node::poll_timeout`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod changes;
pub mod election;
pub mod entity;
mod lifetime;
pub mod node;
pub mod retry;
pub mod wire;

pub use changes::{OwnerChange, CHANGES_KEPT};
pub use election::{
    elect, settle, share_equal_configurations, Decision, Entities, Marks, Member, Plan, Reason,
};
pub use entity::{Entity, Follow, ManagedAddress, NodeName, PlumbHint, DURAVIP_ADDRESS_COUNT_MAX};
pub use lifetime::{address_lifetime_for, ADDRESS_LIFETIME_MIN, REFRESHES_PER_SECOND};
pub use node::{
    Action, Command, CommandError, DropReason, Event, Node, NodeOptions, TakeoverRefused,
    PLUMB_DEADLINE_DEFAULT, STATE_DEADLINE_DEFAULT,
};
