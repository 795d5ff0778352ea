//! The local API's commands answered from the replica.
//!
//! Owns what each command does to the replica and what it replies. It must not frame bytes
//! (`crate::api::serve` does) nor decide limits (the replica does).

use dvip_replicate::{CacheError, Key};

use super::replication::wall;
use super::Daemon;
use crate::api::{ApiCommand, ApiReply, CacheKey};
use crate::metrics::ApiLabel;

fn integer(n: impl TryInto<i64>) -> ApiReply {
    ApiReply::Integer(n.try_into().unwrap_or(i64::MAX))
}

fn refused(e: &CacheError) -> ApiReply {
    ApiReply::Error(e.to_string())
}

impl Daemon {
    /// One command from the local API, answered; what it changed goes to the cluster.
    pub(super) fn api_answer(&mut self, command: ApiCommand) -> ApiReply {
        let name = command.name();
        let reply = self.api_reply(command);
        self.send_replication();
        let outcome = if matches!(reply, ApiReply::Error(_)) {
            "error"
        } else {
            "ok"
        };
        self.metrics
            .api
            .get_or_create(&ApiLabel {
                command: name,
                outcome,
            })
            .inc();
        reply
    }

    fn api_reply(&mut self, command: ApiCommand) -> ApiReply {
        let now = wall();
        let replica = self.replication.replica_mut();
        match command {
            ApiCommand::Ping(None) => ApiReply::Status("PONG"),
            ApiCommand::Ping(Some(message)) => ApiReply::Bulk(Some(message)),
            ApiCommand::Quit | ApiCommand::Client => ApiReply::Status("OK"),
            ApiCommand::Commands => ApiReply::Array(Vec::new()),
            ApiCommand::Get(CacheKey { cache, key }) => {
                match replica.cache_get(&cache, &key, now) {
                    Ok(found) => ApiReply::Bulk(found.map(|v| v.value)),
                    Err(e) => refused(&e),
                }
            }
            ApiCommand::Set {
                key: CacheKey { cache, key },
                value,
                ttl,
            } => match replica.cache_set(&cache, &key, value, ttl, now) {
                Ok(()) => ApiReply::Status("OK"),
                Err(e) => refused(&e),
            },
            ApiCommand::Delete(keys) => {
                let mut deleted = 0;
                for CacheKey { cache, key } in keys {
                    match replica.cache_delete(&cache, &key, now) {
                        Ok(was) => deleted += usize::from(was),
                        Err(e) => return refused(&e),
                    }
                }
                integer(deleted)
            }
            ApiCommand::Exists(keys) => {
                let mut found = 0;
                for CacheKey { cache, key } in keys {
                    match replica.cache_get(&cache, &key, now) {
                        Ok(value) => found += usize::from(value.is_some()),
                        Err(e) => return refused(&e),
                    }
                }
                integer(found)
            }
            ApiCommand::Ttl {
                key: CacheKey { cache, key },
                millis,
            } => match replica.cache_get(&cache, &key, now) {
                // Redis's answers: -2 for no such key, -1 for one that never expires.
                Ok(None) => ApiReply::Integer(-2),
                Ok(Some(value)) => match value.ttl_ms {
                    None => ApiReply::Integer(-1),
                    Some(ms) if millis => integer(ms),
                    Some(ms) => integer(ms.saturating_add(500) / 1000),
                },
                Err(e) => refused(&e),
            },
            ApiCommand::Inbound { address, open } => {
                let key = Key::Inbound(address);
                if open {
                    replica.open(&key, now);
                } else {
                    replica.close(&key, now);
                }
                integer(replica.cluster(&key).open)
            }
            ApiCommand::Outbound {
                address,
                domain,
                group,
                open,
            } => {
                if open {
                    replica.open_outbound(address, &domain, group.as_deref(), now);
                } else {
                    replica.close_outbound(address, &domain, group.as_deref(), now);
                }
                integer(replica.domain_open(&domain, group.as_deref()))
            }
            ApiCommand::DomainCount { domain, group } => {
                integer(replica.domain_open(&domain, group.as_deref()))
            }
            ApiCommand::Cidr(query) => ApiReply::Array(
                replica
                    .query_prefixes(&query, now)
                    .into_iter()
                    .map(|row| {
                        ApiReply::Array(vec![
                            ApiReply::Bulk(Some(row.prefix)),
                            integer(row.open),
                            integer(row.recent),
                        ])
                    })
                    .collect(),
            ),
            ApiCommand::Throttle { name, rate } => {
                integer(i64::from(replica.throttle(&name, rate, now)))
            }
        }
    }
}
