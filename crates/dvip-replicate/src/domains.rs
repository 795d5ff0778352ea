//! Outbound connections: each one counted per destination address (`outbound_cidr`) and per
//! destination domain (`outbound_domains`), in total and for its binding group, and the
//! domains' gauges read back.
//!
//! Owns which keys one outbound connection touches and the domains' report. It must not
//! decide a limit: the MTA compares the counts with its own (`cluster_max_outbound_connections`).

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Key, Kind, Replica};

/// One domain's outbound connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainCount {
    pub domain: String,
    /// The binding group (`None`: every group's together).
    pub group: Option<String>,
    /// Connections open now.
    pub open: u64,
    /// Connections made in the window.
    pub recent: u64,
}

/// A domain as it is counted: lower case, without the root's dot.
fn domain_key(domain: &str) -> String {
    domain.trim_end_matches('.').to_ascii_lowercase()
}

/// The keys one outbound connection counts in: the total's, and its group's when it has one.
fn outbound_keys(address: IpAddr, domain: &str, group: Option<&str>) -> Vec<Key> {
    let domain = domain_key(domain);
    let mut groups = vec![None];
    if let Some(g) = group {
        groups.push(Some(g.to_owned()));
    }
    groups
        .into_iter()
        .flat_map(|group| {
            [
                Key::Outbound {
                    group: group.clone(),
                    address,
                },
                Key::Domain {
                    group,
                    domain: domain.clone(),
                },
            ]
        })
        .collect()
}

impl Replica {
    /// An outbound connection to `address` for `domain` opened here, through binding group
    /// `group` if the MTA names one.
    pub fn open_outbound(
        &mut self,
        address: IpAddr,
        domain: &str,
        group: Option<&str>,
        now: Duration,
    ) {
        for key in outbound_keys(address, domain, group) {
            self.open(&key, now);
        }
    }

    /// That connection closed.
    pub fn close_outbound(
        &mut self,
        address: IpAddr,
        domain: &str,
        group: Option<&str>,
        now: Duration,
    ) {
        for key in outbound_keys(address, domain, group) {
            self.close(&key, now);
        }
    }

    /// The cluster's outbound connections open to `domain` (through `group`, or all groups).
    pub fn domain_open(&self, domain: &str, group: Option<&str>) -> u64 {
        let key = Key::Domain {
            group: group.map(str::to_owned),
            domain: domain_key(domain),
        };
        u64::from(self.cluster(&key).open)
    }

    /// Every domain with connections, the cluster's or `node`'s, for `group` (`None`: the
    /// totals), most open first.
    pub fn domains(
        &self,
        group: Option<&str>,
        node: Option<&str>,
        window_s: u64,
        now: Duration,
    ) -> Vec<DomainCount> {
        let mut rows: Vec<DomainCount> = self
            .counts_in(Kind::Domain.range(), node)
            .into_iter()
            .filter_map(|(key, counts)| match key {
                Key::Domain { group: g, domain } if g.as_deref() == group => Some(DomainCount {
                    domain,
                    group: g,
                    open: u64::from(counts.open),
                    recent: counts.recent.within(now.as_secs(), window_s),
                }),
                _ => None,
            })
            .collect();
        rows.sort_by(|a, b| b.open.cmp(&a.open).then_with(|| a.domain.cmp(&b.domain)));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{exchange, pair};

    #[test]
    fn a_domain_is_counted_over_the_cluster_in_total_and_per_group() {
        let (mut a, mut b) = pair();
        let now = Duration::from_secs(40_000);
        let mx: IpAddr = "198.51.100.25".parse().expect("ip");
        a.open_outbound(mx, "Example.COM.", Some("bulk"), now);
        a.open_outbound(mx, "example.com", None, now);
        b.open_outbound(mx, "example.com", Some("bulk"), now);
        b.open_outbound(mx, "example.net", Some("transactional"), now);
        let later = now + Duration::from_secs(2);
        a.tick(later);
        b.tick(later);
        exchange(&mut a, &mut b);
        for r in [&a, &b] {
            assert_eq!(r.domain_open("example.com", None), 3, "{}", r.name());
            assert_eq!(r.domain_open("example.com", Some("bulk")), 2);
            let totals = r.domains(None, None, 60, later);
            let got: Vec<(&str, u64)> =
                totals.iter().map(|d| (d.domain.as_str(), d.open)).collect();
            assert_eq!(got, [("example.com", 3), ("example.net", 1)]);
        }
        b.close_outbound(mx, "example.com", Some("bulk"), later);
        let mine = b.domains(None, Some("b"), 60, later);
        assert_eq!(mine[0].open, 1, "b's own: example.net");
        assert_eq!(mine.len(), 2, "example.com stays with its recent count");
    }
}
