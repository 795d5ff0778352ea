//! keepalived on the lab, as the baseline the failover benchmark compares dvip with.
//!
//! Owns keepalived's configuration and how its processes are started and failed. The same
//! network, addresses and client probe as dvip's lab; instead of corosync and dvipd, every node
//! runs keepalived with one VRRP instance per node's share of the addresses (VRRPv3, the
//! share's node at the highest priority, so each instance has a natural master), addresses
//! past the 255 a VRRP packet can carry in `virtual_ipaddress_excluded`. keepalived neither
//! balances addresses nor agrees on membership: each instance elects its master on its own.

use std::process::Command;

use dvip_netns::LabError;

use super::state::LabState;
use super::{addresses, err, spawn};

/// The most addresses one VRRP advertisement carries; the rest of a share is excluded from it.
const IN_ADVERT_MAX: usize = 255;

/// What the baseline's keepalived gets beyond the defaults, so the comparison is with
/// keepalived at its best: the VRRP process at the real-time priority corosync runs at by
/// default (SCHED_RR 99), so a busy host delays its adverts no more than corosync's token,
/// allowed a second of CPU between blocking calls (at the default 10 ms the kernel killed it
/// while it added hundreds of addresses, and keepalived waits 16 s to respawn it); and no check
/// of the up to 255 addresses in every advert from the master it already knows.
const TUNING: &str =
    "  vrrp_rt_priority 99\n  vrrp_rlimit_rttime 1000000\n  vrrp_skip_check_adv_addr\n";

/// Node `i`'s priority for the shares of others: below the owner's 150 and spread as far
/// apart as the range allows. VRRP staggers the backups' takeover by their priorities
/// (VRRPv3's skew is (256 - priority) / 256 of an interval); priorities one apart stagger them
/// by 1/256 of an interval, so on a busy host both take over, as the first version of this lab
/// did (BENCHMARKS.md, "keepalived's second master"). An operator spaces them widely.
fn backup_priority(nodes: usize, i: usize) -> usize {
    let step = 140 / nodes.max(1);
    150 - step * i.min(nodes)
}

/// Node `i`'s keepalived.conf: every share as an instance, node `i`'s own at priority 150.
pub(super) fn config(state: &LabState, i: usize, advert_ms: u32) -> String {
    let mut text = format!(
        "# dvip lab `{}`, node{i}: the keepalived baseline\nglobal_defs {{\n  router_id node{i}\n  vrrp_version 3\n  script_user root\n  enable_script_security\n{TUNING}}}\n",
        state.name
    );
    for share in 1..=state.nodes {
        let members: Vec<String> = self::share(state, share)
            .iter()
            .map(|a| format!("    {a}/32 dev eth0\n"))
            .collect();
        if members.is_empty() {
            // Fewer addresses than nodes: this node's share is empty and needs no instance.
            continue;
        }
        let (carried, excluded) = members.split_at(members.len().min(IN_ADVERT_MAX));
        let priority = if share == i {
            150
        } else {
            backup_priority(state.nodes, i)
        };
        text.push_str(&format!(
            "vrrp_instance share{share} {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {share}\n  priority {priority}\n  advert_int {:.2}\n  virtual_ipaddress {{\n{}  }}\n",
            f64::from(advert_ms) / 1000.0,
            carried.concat()
        ));
        if !excluded.is_empty() {
            text.push_str(&format!(
                "  virtual_ipaddress_excluded {{\n{}  }}\n",
                excluded.concat()
            ));
        }
        text.push_str("}\n");
    }
    text
}

/// Node `i`'s share, sorted: every nodes-th address from the i-th, the same split dvip's
/// balance gives a fresh cluster.
pub(super) fn share(state: &LabState, i: usize) -> Vec<String> {
    let mut share: Vec<String> = addresses(state.addresses)
        .skip(i - 1)
        .step_by(state.nodes)
        .map(|a| a.to_string())
        .collect();
    share.sort();
    share
}

/// Every node holds its own share: each instance's master is the node it belongs to (a fresh
/// start, or the preempting return of a node that was down).
pub(crate) fn settled(state: &LabState) -> bool {
    let topology = state.topology();
    (1..=state.nodes).all(|i| topology.held(i) == share(state, i))
}

/// Starts keepalived on node `i` in the foreground, with private pid files (a tmpfs on /run in
/// a mount namespace of its own). Addresses a killed keepalived left are the caller's to remove
/// first (as a rebooted host would have none).
pub(super) fn start(state: &mut LabState, i: usize, advert_ms: u32) -> Result<(), LabError> {
    let topology = state.topology();
    let conf = state.dir().join(format!("keepalived-{i}.conf"));
    std::fs::write(&conf, config(state, i, advert_ms))
        .map_err(|e| err(format!("keepalived.conf: {e}")))?;
    let script = format!(
        "mount -t tmpfs tmpfs /run && exec keepalived -n -l -G -D -f {} -p /run/keepalived.pid -r /run/vrrp.pid",
        conf.display()
    );
    let command = topology.command_with_own_mounts(i, &script);
    spawn(state, format!("keepalived-{i}"), command)
}

/// Whether keepalived is installed.
pub(super) fn installed() -> bool {
    Command::new("keepalived")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() || !o.stderr.is_empty())
}

#[cfg(test)]
mod tests {
    use super::backup_priority;

    #[test]
    fn backups_are_spread_below_the_owner_and_never_reach_zero() {
        assert_eq!(
            (1..=3).map(|i| backup_priority(3, i)).collect::<Vec<_>>(),
            [104, 58, 12]
        );
        for nodes in 2..=16 {
            let all: Vec<usize> = (1..=nodes).map(|i| backup_priority(nodes, i)).collect();
            assert!(all.windows(2).all(|w| w[0] >= w[1] + 8), "{nodes}: {all:?}");
            assert!(
                all.iter().all(|&p| (1..150).contains(&p)),
                "{nodes}: {all:?}"
            );
        }
    }
}
