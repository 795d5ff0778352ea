//! dvipd's edges: the parts of the daemon that touch the machine.
//!
//! Each module translates between the sans-IO core and one outside thing, and decides
//! nothing: [`plumb`] speaks netlink to put addresses on interfaces and take them off. The
//! console (`dvip`) uses the same modules for its maintenance commands.

pub mod plumb;
