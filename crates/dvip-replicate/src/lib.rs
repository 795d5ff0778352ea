//! Replication, as a pure state machine: every node counts what it sees (connections open
//! now and connections made lately, per client address, per destination address and per
//! destination domain, and the hits of named throttles), shares its own counts with the other
//! members of the view, and answers for the whole cluster with the sum over the live members.
//! Named caches of key/value pairs ride on the same batches.
//!
//! Owns the merge rules and the messages. It must not read a clock, touch a socket or know
//! the bus: the caller feeds it the time, the views and the messages delivered, and sends
//! what it returns (see [`Replica`]). The daemon and the simulator drive it alike.
//!
//! # The rules
//!
//! - **One writer per slot.** A node's own counts are changed by that node alone; the others
//!   keep a copy of them. The cluster's count for a key is the sum of the copies of the live
//!   members and the node's own. A healed partition needs no merge of conflicting writes: each
//!   member sends its own counts again and the copies are replaced.
//! - **Batches.** Changes are sent at most `max_delay` after the first of them and as soon as
//!   `max_pending` keys have changed. A batch carries each changed key's values as they are
//!   now (not increments), so applying one twice changes nothing.
//! - **Views.** In every new view, every member sends a snapshot of its own counts (so a
//!   joiner learns everything, and a batch sent in the old view but delivered in the new one,
//!   which is dropped as stale, is made up for); messages of another view are dropped. A member that leaves takes its open connections
//!   with it (they died with it, or will be counted again by whoever takes them over), but
//!   what it counted lately stays, read-only, until it is older than the longest window: a
//!   node's death must not reset a rate limit. A node that joins later does not see those.
//! - **Only what is configured is shared.** Kinds of key that no `replicate` stanza names are
//!   counted on the node alone ([`ReplicaOptions::shared`]).
//! - **Caches: the last write wins.** Any node writes any key; a write's stamp (a hybrid
//!   clock and the writer's name) orders it among all writes the same way everywhere. Cache
//!   writes are not bound to a view. A node that joins is sent every write of the caches with
//!   snapshots, and only later writes of the others. `max_size` is each node's own: the oldest
//!   writes are evicted locally, with no message.

mod cache;
mod caches;
mod cidr;
mod counts;
mod domains;
mod key;
mod limits;
mod replica;
#[cfg(test)]
mod testing;
mod throttle;
pub mod wire;

pub use cache::{
    parse_ttl, CacheOptions, CacheValue, CacheWrite, Stamp, CACHE_TYPE, KEY_MAX, TOMBSTONE_KEEP,
    VALUE_MAX,
};
pub use caches::{CacheError, CacheSummary};
pub use cidr::{Direction, Order, PrefixCount, PrefixQuery, QueryError, WINDOW_DEFAULT_S};
pub use counts::{Counts, Recent};
pub use domains::DomainCount;
pub use key::{Key, Kind};
pub use limits::{prefix_range, InboundLimit, Verdict};
pub use replica::{
    Action, Replica, ReplicaOptions, BATCH_GAP, HORIZON_DEFAULT, MAX_DELAY_DEFAULT,
    MAX_PENDING_DEFAULT,
};
pub use throttle::{Rate, ThrottleCount};
