//! dvipd: the daemon, and the edges that touch the machine.
//!
//! Each edge module translates between the sans-IO core and one outside thing and decides
//! nothing: [`plumb`] speaks netlink to put addresses on interfaces and take them off;
//! [`spread`] says which holder interface an IPv4 address goes on when there are thousands;
//! [`announce`] tells the link (gratuitous ARP, unsolicited neighbour advertisements);
//! [`corosync`] is the group bus, and [`views`] numbers its views; [`console`] carries
//! operators' requests over a unix socket. [`daemon`] owns the core and feeds it. The console (`dvip`) uses the same modules for its
//! maintenance commands.

pub mod accept;
pub mod announce;
pub mod api;
pub mod broadcast;
pub mod console;
pub mod corosync;
pub mod daemon;
pub mod forward;
pub mod fragment;
pub mod guardian;
pub mod heartbeat;
pub mod hook;
pub mod kept;
pub mod kernel_lease;
pub mod logging;
pub mod logs;
pub mod metrics;
pub mod nfset;
pub mod nft_watch;
pub mod policy;
pub mod proxy_header;
pub mod silence;
pub mod views;

// The netlink edge lives in its own crate, which `dvip plumb` uses without the daemon.
pub use dvip_plumb::{plumb, spread, watch};
