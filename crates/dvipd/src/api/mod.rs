//! The local API: MTAs on this node count connections, read and write caches and ask
//! throttles over a unix socket in the Redis protocol.
//!
//! [`command`] is the vocabulary, typed; [`serve`] is the socket and its framing. Neither
//! answers anything: the daemon's loop does, from its replica.

pub mod command;
pub mod serve;

pub use command::{ApiCommand, ApiError, ApiReply, CacheKey};
pub use serve::{bind, serve, Asked, BindError};
