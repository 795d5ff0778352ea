//! The local API's vocabulary: the commands an MTA sends, parsed from RESP's arguments into
//! [`ApiCommand`], and the replies it gets back as [`ApiReply`].
//!
//! Owns the command names, their arguments and what a wrong one is told. It must not touch
//! the replica (the daemon answers) nor the socket (`serve` frames the bytes).

use std::net::IpAddr;
use std::time::Duration;

use dvip_replicate::{PrefixQuery, Rate};

/// One command, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiCommand {
    /// `PING [message]`: a health check.
    Ping(Option<String>),
    /// `QUIT`: the client is done.
    Quit,
    /// `CLIENT ...`, `HELLO`-less handshakes of client libraries: acknowledged, nothing kept.
    Client,
    /// `COMMAND [...]`: redis-cli's start-up question about commands; nothing to list.
    Commands,
    /// `GET cache:key`.
    Get(CacheKey),
    /// `SET cache:key value [EX seconds | PX milliseconds]`.
    Set {
        key: CacheKey,
        value: String,
        ttl: Option<Duration>,
    },
    /// `DEL cache:key...`: how many were there.
    Delete(Vec<CacheKey>),
    /// `EXISTS cache:key...`: how many are there.
    Exists(Vec<CacheKey>),
    /// `TTL cache:key` (`PTTL`: in milliseconds).
    Ttl { key: CacheKey, millis: bool },
    /// `INBOUND.OPEN address`: a client connected here; `INBOUND.CLOSE` when it leaves.
    Inbound { address: IpAddr, open: bool },
    /// `OUTBOUND.OPEN address domain [group]`: this node opened a connection from `address`
    /// (a binding) to `domain`; `OUTBOUND.CLOSE` when it closes.
    Outbound {
        address: IpAddr,
        domain: String,
        group: Option<String>,
        open: bool,
    },
    /// `DOMAIN.COUNT domain [group]`: the cluster's open connections to a domain.
    DomainCount {
        domain: String,
        group: Option<String>,
    },
    /// `CIDR count for PREFIX in inbound|outbound ...`: the console's grammar, rows back.
    Cidr(PrefixQuery),
    /// `THROTTLE name hits seconds`: whether one more hit fits the cluster's rate.
    Throttle { name: String, rate: Rate },
}

/// A cache and a key in it: `greylist:198.51.100.7` names key `198.51.100.7` of cache
/// `greylist` (the first colon separates them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    pub cache: String,
    pub key: String,
}

/// What a command gets back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiReply {
    /// `+OK` and the like.
    Status(&'static str),
    Integer(i64),
    /// A value, or nil.
    Bulk(Option<String>),
    Array(Vec<Self>),
    /// `-ERR ...`.
    Error(String),
}

/// Why a command was refused, as the client reads it after `-ERR`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("a command is an array of strings")]
    NotAnArray,
    #[error("unknown command `{0}`; dvip answers PING, GET, SET, DEL, EXISTS, TTL, PTTL, INBOUND.OPEN, INBOUND.CLOSE, OUTBOUND.OPEN, OUTBOUND.CLOSE, DOMAIN.COUNT, CIDR, THROTTLE")]
    Unknown(String),
    #[error("`{command}` takes {usage}")]
    Arguments {
        command: &'static str,
        usage: &'static str,
    },
    #[error("`{0}` names no cache: write `CACHE:KEY`, the cache's name and the key with a colon between")]
    NoCacheName(String),
    #[error("`{0}` is not an IP address")]
    Address(String),
    #[error("{0}")]
    Wrong(String),
}

impl ApiCommand {
    /// The command in `args`, the first being its name (any case).
    pub fn parse(args: &[String]) -> Result<Self, ApiError> {
        let Some((name, rest)) = args.split_first() else {
            return Err(ApiError::NotAnArray);
        };
        let upper = name.to_ascii_uppercase();
        let usage = |command, usage| ApiError::Arguments { command, usage };
        match (upper.as_str(), rest) {
            ("PING", []) => Ok(Self::Ping(None)),
            ("PING", [message]) => Ok(Self::Ping(Some(message.clone()))),
            ("PING", _) => Err(usage("PING", "at most a message")),
            ("QUIT", _) => Ok(Self::Quit),
            ("CLIENT", _) => Ok(Self::Client),
            ("COMMAND", _) => Ok(Self::Commands),
            ("GET", [key]) => Ok(Self::Get(CacheKey::parse(key)?)),
            ("GET", _) => Err(usage("GET", "one CACHE:KEY")),
            ("SET", [key, value, ttl @ ..]) => Ok(Self::Set {
                key: CacheKey::parse(key)?,
                value: value.clone(),
                ttl: expiry(ttl)?,
            }),
            ("SET", _) => Err(usage(
                "SET",
                "CACHE:KEY VALUE, then EX SECONDS or PX MILLISECONDS if it expires",
            )),
            ("DEL" | "EXISTS", []) => Err(usage(
                if upper == "DEL" { "DEL" } else { "EXISTS" },
                "one or more CACHE:KEY",
            )),
            ("DEL", keys) => Ok(Self::Delete(cache_keys(keys)?)),
            ("EXISTS", keys) => Ok(Self::Exists(cache_keys(keys)?)),
            ("TTL" | "PTTL", [key]) => Ok(Self::Ttl {
                key: CacheKey::parse(key)?,
                millis: upper == "PTTL",
            }),
            ("TTL" | "PTTL", _) => Err(usage("TTL", "one CACHE:KEY")),
            ("INBOUND.OPEN" | "INBOUND.CLOSE", [address]) => Ok(Self::Inbound {
                address: address_of(address)?,
                open: upper == "INBOUND.OPEN",
            }),
            ("INBOUND.OPEN" | "INBOUND.CLOSE", _) => {
                Err(usage("INBOUND.OPEN", "the client's address"))
            }
            ("OUTBOUND.OPEN" | "OUTBOUND.CLOSE", [address, domain, group @ ..])
                if group.len() <= 1 =>
            {
                Ok(Self::Outbound {
                    address: address_of(address)?,
                    domain: domain.clone(),
                    group: group.first().cloned(),
                    open: upper == "OUTBOUND.OPEN",
                })
            }
            ("OUTBOUND.OPEN" | "OUTBOUND.CLOSE", _) => Err(usage(
                "OUTBOUND.OPEN",
                "the binding's address, the domain and maybe the binding group",
            )),
            ("DOMAIN.COUNT", [domain, group @ ..]) if group.len() <= 1 => Ok(Self::DomainCount {
                domain: domain.clone(),
                group: group.first().cloned(),
            }),
            ("DOMAIN.COUNT", _) => Err(usage(
                "DOMAIN.COUNT",
                "the domain and maybe the binding group",
            )),
            ("CIDR", words) => PrefixQuery::parse(words)
                .map(Self::Cidr)
                .map_err(|e| ApiError::Wrong(e.to_string())),
            ("THROTTLE", [name, hits, seconds]) => {
                let rate: Rate = format!("{hits}/{seconds}")
                    .parse()
                    .map_err(ApiError::Wrong)?;
                Ok(Self::Throttle {
                    name: name.clone(),
                    rate,
                })
            }
            ("THROTTLE", _) => Err(usage(
                "THROTTLE",
                "the throttle's name, the hits allowed and the seconds they are allowed in",
            )),
            _ => Err(ApiError::Unknown(name.clone())),
        }
    }
}

impl ApiCommand {
    /// The command's name as counted in the metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ping(_) => "PING",
            Self::Quit => "QUIT",
            Self::Client => "CLIENT",
            Self::Commands => "COMMAND",
            Self::Get(_) => "GET",
            Self::Set { .. } => "SET",
            Self::Delete(_) => "DEL",
            Self::Exists(_) => "EXISTS",
            Self::Ttl { millis: false, .. } => "TTL",
            Self::Ttl { millis: true, .. } => "PTTL",
            Self::Inbound { open: true, .. } => "INBOUND.OPEN",
            Self::Inbound { open: false, .. } => "INBOUND.CLOSE",
            Self::Outbound { open: true, .. } => "OUTBOUND.OPEN",
            Self::Outbound { open: false, .. } => "OUTBOUND.CLOSE",
            Self::DomainCount { .. } => "DOMAIN.COUNT",
            Self::Cidr(_) => "CIDR",
            Self::Throttle { .. } => "THROTTLE",
        }
    }
}

impl CacheKey {
    fn parse(text: &str) -> Result<Self, ApiError> {
        match text.split_once(':') {
            Some((cache, key)) if !cache.is_empty() => Ok(Self {
                cache: cache.to_owned(),
                key: key.to_owned(),
            }),
            _ => Err(ApiError::NoCacheName(text.to_owned())),
        }
    }
}

fn cache_keys(keys: &[String]) -> Result<Vec<CacheKey>, ApiError> {
    keys.iter().map(|k| CacheKey::parse(k)).collect()
}

fn address_of(text: &str) -> Result<IpAddr, ApiError> {
    text.parse().map_err(|_| ApiError::Address(text.to_owned()))
}

/// `EX seconds` or `PX milliseconds`, or nothing (never expires).
fn expiry(words: &[String]) -> Result<Option<Duration>, ApiError> {
    let wrong = || ApiError::Wrong("after the value: EX SECONDS or PX MILLISECONDS".to_owned());
    match words {
        [] => Ok(None),
        [unit, n] => {
            let n: u64 = n.parse().map_err(|_| wrong())?;
            if n == 0 {
                return Err(ApiError::Wrong("an expiry must be over 0".to_owned()));
            }
            match unit.to_ascii_uppercase().as_str() {
                "EX" => Ok(Some(Duration::from_secs(n))),
                "PX" => Ok(Some(Duration::from_millis(n))),
                _ => Err(wrong()),
            }
        }
        _ => Err(wrong()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<ApiCommand, ApiError> {
        let args: Vec<String> = line.split(' ').map(str::to_owned).collect();
        ApiCommand::parse(&args)
    }

    fn key(cache: &str, key: &str) -> CacheKey {
        CacheKey {
            cache: cache.into(),
            key: key.into(),
        }
    }

    #[test]
    fn cache_commands_split_the_cache_from_the_key_at_the_first_colon() {
        assert_eq!(
            parse("get greylist:2001:db8::1"),
            Ok(ApiCommand::Get(key("greylist", "2001:db8::1")))
        );
        assert_eq!(
            parse("SET seen:a 1 EX 30"),
            Ok(ApiCommand::Set {
                key: key("seen", "a"),
                value: "1".into(),
                ttl: Some(Duration::from_secs(30))
            })
        );
        assert_eq!(
            parse("SET seen:a 1 px 1500"),
            Ok(ApiCommand::Set {
                key: key("seen", "a"),
                value: "1".into(),
                ttl: Some(Duration::from_millis(1500))
            })
        );
        assert_eq!(
            parse("DEL seen:a seen:b"),
            Ok(ApiCommand::Delete(vec![key("seen", "a"), key("seen", "b")]))
        );
        assert_eq!(
            parse("PTTL seen:a"),
            Ok(ApiCommand::Ttl {
                key: key("seen", "a"),
                millis: true
            })
        );
        assert_eq!(
            parse("GET nocolon"),
            Err(ApiError::NoCacheName("nocolon".into()))
        );
        assert_eq!(parse("GET :x"), Err(ApiError::NoCacheName(":x".into())));
        assert!(matches!(parse("SET a:b 1 EX 0"), Err(ApiError::Wrong(_))));
        assert!(matches!(
            parse("SET a:b 1 KEEPTTL"),
            Err(ApiError::Wrong(_))
        ));
        assert!(matches!(parse("DEL"), Err(ApiError::Arguments { .. })));
    }

    #[test]
    fn counting_commands_take_addresses_domains_and_groups() {
        assert_eq!(
            parse("OUTBOUND.OPEN 198.51.100.7 Example.COM warm"),
            Ok(ApiCommand::Outbound {
                address: "198.51.100.7".parse().expect("ip"),
                domain: "Example.COM".into(),
                group: Some("warm".into()),
                open: true
            })
        );
        assert_eq!(
            parse("inbound.close 2001:db8::9"),
            Ok(ApiCommand::Inbound {
                address: "2001:db8::9".parse().expect("ip"),
                open: false
            })
        );
        assert_eq!(
            parse("OUTBOUND.OPEN mail.example example.com"),
            Err(ApiError::Address("mail.example".into()))
        );
        assert!(matches!(
            parse("OUTBOUND.OPEN 198.51.100.7 a b c"),
            Err(ApiError::Arguments { .. })
        ));
        assert_eq!(
            parse("DOMAIN.COUNT example.com"),
            Ok(ApiCommand::DomainCount {
                domain: "example.com".into(),
                group: None
            })
        );
        assert_eq!(
            parse("THROTTLE bounces 100 60"),
            Ok(ApiCommand::Throttle {
                name: "bounces".into(),
                rate: Rate {
                    hits: 100,
                    window: Duration::from_secs(60)
                }
            })
        );
        assert!(matches!(
            parse("THROTTLE bounces many 60"),
            Err(ApiError::Wrong(_))
        ));
        let Ok(ApiCommand::Cidr(query)) = parse("CIDR count for 203.0.113.0/24 in inbound from n2")
        else {
            panic!("a CIDR query");
        };
        assert_eq!(query.from.as_deref(), Some("n2"));
        assert!(matches!(
            parse("CIDR count for nowhere"),
            Err(ApiError::Wrong(_))
        ));
    }

    #[test]
    fn an_unknown_command_is_named_back() {
        let e = parse("FLUSHALL").expect_err("unknown");
        assert_eq!(e, ApiError::Unknown("FLUSHALL".into()));
        assert!(e.to_string().contains("GET"), "{e}");
        assert_eq!(ApiCommand::parse(&[]), Err(ApiError::NotAnArray));
    }
}
