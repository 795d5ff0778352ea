//! dvip's console protocol, shared by `dvip`, dvipd and the lab.
//!
//! A client sends one [`Request`] as a JSON line on dvipd's unix socket and reads one reply
//! line: the report its request asks for ([`Answer`]) or a typed [`ConsoleError`]. `events`
//! instead streams one [`EventLine`] per line. The protocol is versioned (`"v": 1`); a line
//! without a version is read as version 1.
//!
//! One module per part: `request` (what can be asked, what may be broadcast), `reply` (the
//! typed reports), `event` (the event stream), `error` (error kinds), `client` (the socket's
//! client side). Nothing here acts on a request.

mod client;
mod error;
mod event;
mod reply;
mod request;

pub use client::{Client, SOCKET_DEFAULT, SOCKET_ENV};
pub use error::{ConsoleError, ErrorKind};
pub use event::{Event, EventLine};
pub use reply::{
    Acknowledged, AddressPlan, AddressStatus, Announced, Answer, Arp, ArpMode, BusStatus,
    CacheValueReport, CachesReport, CidrReport, ClusterStatus, ConfigStatus, Description,
    DomainsReport, Gathered, InTransit, Info, LeaseState, LeaseStatus, Mark, MarkedAddress,
    NodeState, NodeStatus, OwnerChange, StandingMove, Status, ThrottlesReport, ViewStatus,
    Withheld,
};
pub use request::{Request, PROTOCOL_VERSION};
