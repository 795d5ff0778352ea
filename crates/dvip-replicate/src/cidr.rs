//! Queries of the counts by prefix, in the grammar of Momentum's `cidr_server`:
//! `count for 203.0.113.0/24 in inbound [cidrsize 24 [to 32]] [order by cidr|count]
//! [limit N] [threshold N] [window S] [from NODE]`.
//!
//! Owns the grammar, its errors, and grouping the cluster's counts into prefixes. It must not
//! print (the console does) nor know where a query came from.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::limits::prefix_range;
use crate::{Key, Replica};

/// Which connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

/// How rows are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// By prefix (the default).
    Cidr,
    /// Most connections first.
    Count,
}

/// One query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixQuery {
    /// The prefix looked into.
    pub network: IpAddr,
    pub len: u8,
    pub direction: Direction,
    /// The prefix lengths rows are grouped by, from..=to (default: the query's own length).
    pub sizes: (u8, u8),
    pub order: Order,
    /// At most this many rows.
    pub limit: Option<usize>,
    /// Only rows with at least this many connections (open or recent).
    pub threshold: Option<u64>,
    /// The window of the recent counts, in seconds.
    pub window_s: u64,
    /// One node's counts instead of the cluster's.
    pub from: Option<String>,
}

/// One row: a prefix and its counts over the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixCount {
    /// `203.0.113.0/24`.
    pub prefix: String,
    /// Connections open now.
    pub open: u64,
    /// Connections made in the window.
    pub recent: u64,
}

/// What is wrong with a query, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError(pub String);

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QueryError {}

/// The window of recent counts when a query names none.
pub const WINDOW_DEFAULT_S: u64 = 60;

const GRAMMAR: &str = "count for PREFIX in inbound|outbound [cidrsize N [to M]] [order by cidr|count] [limit N] [threshold N] [window SECONDS] [from NODE]";

fn wrong(why: impl Into<String>) -> QueryError {
    QueryError(format!("{}; the query is: {GRAMMAR}", why.into()))
}

fn number<T: std::str::FromStr>(word: Option<&str>, what: &str) -> Result<T, QueryError> {
    word.and_then(|w| w.parse().ok())
        .ok_or_else(|| wrong(format!("`{what}` takes a number")))
}

impl PrefixQuery {
    /// Reads the words of a query.
    pub fn parse(words: &[String]) -> Result<Self, QueryError> {
        let mut words = words.iter().map(String::as_str).peekable();
        let mut expect = |word: &str| match words.next() {
            Some(w) if w.eq_ignore_ascii_case(word) => Ok(()),
            other => Err(wrong(format!(
                "expected `{word}`, found {}",
                other.map_or("the end".to_owned(), |w| format!("`{w}`"))
            ))),
        };
        expect("count")?;
        expect("for")?;
        let prefix = words.next().ok_or_else(|| wrong("no PREFIX"))?;
        let (network, len) = parse_prefix(prefix)?;
        if !words.next().is_some_and(|w| w.eq_ignore_ascii_case("in")) {
            return Err(wrong("expected `in` after the prefix"));
        }
        let direction = match words.next().map(str::to_ascii_lowercase).as_deref() {
            Some("inbound") => Direction::Inbound,
            Some("outbound") => Direction::Outbound,
            _ => return Err(wrong("expected `inbound` or `outbound`")),
        };
        let top = match network {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let mut query = Self {
            network,
            len,
            direction,
            sizes: (len, len),
            order: Order::Cidr,
            limit: None,
            threshold: None,
            window_s: WINDOW_DEFAULT_S,
            from: None,
        };
        while let Some(word) = words.next() {
            match word.to_ascii_lowercase().as_str() {
                "cidrsize" => {
                    let from: u8 = number(words.next(), "cidrsize")?;
                    let to = if words.peek().is_some_and(|w| w.eq_ignore_ascii_case("to")) {
                        words.next();
                        number(words.next(), "to")?
                    } else {
                        from
                    };
                    if from < len || to < from || to > top {
                        return Err(wrong(format!(
                            "cidrsize {from} to {to} must lie within {len} to {top} and grow"
                        )));
                    }
                    query.sizes = (from, to);
                }
                "order" => {
                    if !words.next().is_some_and(|w| w.eq_ignore_ascii_case("by")) {
                        return Err(wrong("expected `by` after `order`"));
                    }
                    query.order = match words.next().map(str::to_ascii_lowercase).as_deref() {
                        Some("cidr") => Order::Cidr,
                        Some("count") => Order::Count,
                        _ => return Err(wrong("order by `cidr` or `count`")),
                    };
                }
                "limit" => query.limit = Some(number(words.next(), "limit")?),
                "threshold" => query.threshold = Some(number(words.next(), "threshold")?),
                "window" => query.window_s = number::<u64>(words.next(), "window")?.max(1),
                "from" => {
                    let node = words
                        .next()
                        .ok_or_else(|| wrong("`from` takes a node's name"))?;
                    query.from = Some(node.to_owned());
                }
                other => return Err(wrong(format!("`{other}` is not part of a query"))),
            }
        }
        Ok(query)
    }
}

fn parse_prefix(text: &str) -> Result<(IpAddr, u8), QueryError> {
    let (address, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let address: IpAddr = address
        .parse()
        .map_err(|_| wrong(format!("`{text}` is not a prefix like 203.0.113.0/24")))?;
    let top = if address.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => top,
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|&l| l <= top)
            .ok_or_else(|| wrong(format!("`{text}`: the length is 0 to {top}")))?,
    };
    Ok((prefix_range(address, len).0, len))
}

impl Replica {
    /// The cluster's counts under `query.network/len`, grouped by each prefix length of
    /// `query.sizes`, ordered, thresholded and limited as it asks.
    pub fn query_prefixes(&self, query: &PrefixQuery, now: Duration) -> Vec<PrefixCount> {
        let (first, last) = prefix_range(query.network, query.len);
        let from = query.from.as_deref();
        let keys = match query.direction {
            Direction::Inbound => self.counts_in(Key::Inbound(first)..=Key::Inbound(last), from),
            // Every outbound connection is counted with no group as well as with its own.
            Direction::Outbound => self.counts_in(
                Key::Outbound {
                    group: None,
                    address: first,
                }..=Key::Outbound {
                    group: None,
                    address: last,
                },
                from,
            ),
        };
        let mut rows: Vec<(IpAddr, u8, u64, u64)> = Vec::new();
        for size in query.sizes.0..=query.sizes.1 {
            let mut groups: std::collections::BTreeMap<IpAddr, (u64, u64)> = Default::default();
            for (key, counts) in &keys {
                let (Key::Inbound(address) | Key::Outbound { address, .. }) = key else {
                    continue;
                };
                let slot = groups.entry(prefix_range(*address, size).0).or_default();
                slot.0 += u64::from(counts.open);
                slot.1 += counts.recent.within(now.as_secs(), query.window_s);
            }
            rows.extend(groups.into_iter().map(|(n, (o, r))| (n, size, o, r)));
        }
        if let Some(t) = query.threshold {
            rows.retain(|&(_, _, open, recent)| open.max(recent) >= t);
        }
        match query.order {
            Order::Cidr => rows.sort_by_key(|&(n, size, ..)| (n, size)),
            Order::Count => rows.sort_by_key(|&(n, size, open, recent)| {
                (std::cmp::Reverse(open.max(recent)), n, size)
            }),
        }
        rows.truncate(query.limit.unwrap_or(usize::MAX));
        rows.into_iter()
            .map(|(n, size, open, recent)| PrefixCount {
                prefix: format!("{n}/{size}"),
                open,
                recent,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReplicaOptions;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn the_grammar_reads_every_clause_and_says_what_is_wrong() {
        let q = PrefixQuery::parse(&words(
            "count for 203.0.113.77/24 in inbound cidrsize 24 to 32 order by count limit 5 threshold 2",
        ))
        .expect("a query");
        assert_eq!(q.network, "203.0.113.0".parse::<IpAddr>().expect("ip"));
        assert_eq!((q.len, q.sizes, q.order), (24, (24, 32), Order::Count));
        assert_eq!((q.limit, q.threshold), (Some(5), Some(2)));
        for (bad, says) in [
            ("count for nowhere in inbound", "is not a prefix"),
            (
                "count for 203.0.113.0/24 in sideways",
                "`inbound` or `outbound`",
            ),
            (
                "count for 203.0.113.0/24 in inbound cidrsize 16",
                "must lie within 24 to 32",
            ),
            (
                "count for 203.0.113.0/24 in inbound order count",
                "expected `by`",
            ),
            (
                "count for 203.0.113.0/24 in inbound limit many",
                "`limit` takes a number",
            ),
            ("show 203.0.113.0/24", "expected `count`"),
        ] {
            let e = PrefixQuery::parse(&words(bad)).expect_err(bad);
            assert!(
                e.0.contains(says) && e.0.contains("the query is:"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn counts_are_grouped_by_each_size_ordered_and_cut() {
        let mut r = Replica::new("a", ReplicaOptions::default());
        let now = Duration::from_secs(50_000);
        for (last, times) in [(1u8, 3), (2, 1), (200, 2)] {
            for _ in 0..times {
                r.count(&Key::Inbound([203, 0, 113, last].into()), now);
            }
        }
        r.open(&Key::Inbound([203, 0, 113, 1].into()), now);
        let q = PrefixQuery::parse(&words(
            "count for 203.0.113.0/24 in inbound cidrsize 24 to 25 order by count",
        ))
        .expect("a query");
        let rows = r.query_prefixes(&q, now);
        let got: Vec<(&str, u64, u64)> = rows
            .iter()
            .map(|p| (p.prefix.as_str(), p.open, p.recent))
            .collect();
        assert_eq!(
            got,
            [
                ("203.0.113.0/24", 1, 7),
                ("203.0.113.0/25", 1, 5),
                ("203.0.113.128/25", 0, 2)
            ]
        );
        let q = PrefixQuery {
            threshold: Some(3),
            limit: Some(1),
            ..q
        };
        assert_eq!(r.query_prefixes(&q, now).len(), 1);
    }
}
