//! dvip's netlink edge, shared by dvipd and the operator's `dvip plumb`.
//!
//! [`plumb`] adds and removes dvip's addresses (marked with their own address protocol, with a
//! finite lifetime), [`spread`] says which holder interface an IPv4 address goes on when there
//! are thousands, and [`watch`] follows links and addresses. Each translates between netlink
//! and plain values and decides nothing: the daemon decides.

pub mod plumb;
pub mod spread;
pub mod watch;
