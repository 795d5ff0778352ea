//! The kernel's end of an owner's lease (docs/leases.md): an nftables table whose egress
//! chains drop the ARP and IPv4 answers of dvip's addresses on the node's interfaces unless
//! a set element is alive, and the frames that renew that element, each for a short timeout.
//!
//! While dvipd holds its lease it renews; when it stops (its lease lapsed, or the daemon is
//! paused or gone) the kernel stops answering for the addresses within the timeout, with no
//! process running. Owns the ruleset's text, loading and removing it with `nft`, and the
//! renewal frames. It must not decide when to renew: the detector's lease does.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The nftables table dvipd owns (family `netdev`).
pub const TABLE: &str = "dvip_lease";
/// The ethertype of a renewal frame: IEEE's local experimental type, dropped in the egress
/// chain that reads it, so it never leaves the machine.
pub const RENEWAL_ETHERTYPE: u16 = 0x88b5;

/// Why the kernel's lease could not be set up or renewed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KernelLeaseError {
    #[error("cannot run nft (is the nftables package installed?): {0}")]
    NoNft(std::io::Error),
    #[error("nft refused the lease table: {0}")]
    Refused(String),
    #[error("interface `{0}` does not exist or has no MAC address")]
    NoInterface(String),
    #[error("cannot send a renewal on `{interface}`: {source}")]
    Send {
        interface: String,
        #[source]
        source: std::io::Error,
    },
}

/// How long one renewal keeps the addresses answering: above two of the kernel's ticks at
/// 250 Hz, so a renewal every 5 ms keeps them answering, and short enough to end well within
/// the lease's margin.
pub const RENEWAL_TIMEOUT: Duration = Duration::from_millis(12);

/// What the kernel guards: dvip's addresses, answered on these interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelLease {
    pub interfaces: Vec<String>,
    pub addresses: Vec<Ipv4Addr>,
    /// IPv6 addresses: what is sent from them (their neighbour advertisements included, which
    /// Linux sends from the address it advertises) is dropped the same way.
    pub addresses6: Vec<std::net::Ipv6Addr>,
    /// How long one renewal keeps the addresses answering (the kernel rounds it to its tick).
    pub timeout: Duration,
}

impl KernelLease {
    /// Every configured address, on the interfaces they are plumbed on.
    pub fn guarding(addresses: &[dvip_core::ManagedAddress]) -> Self {
        let mut interfaces: Vec<String> = addresses
            .iter()
            .map(|m| m.plumb.interface.clone())
            .collect();
        interfaces.sort();
        interfaces.dedup();
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for m in addresses {
            match m.address {
                std::net::IpAddr::V4(a) => v4.push(a),
                std::net::IpAddr::V6(a) => v6.push(a),
            }
        }
        Self {
            interfaces,
            addresses: v4,
            addresses6: v6,
            timeout: RENEWAL_TIMEOUT,
        }
    }

    /// The table, in nft's language: one egress chain per interface, sharing the lease set.
    pub fn ruleset(&self) -> String {
        let ms = self.timeout.as_millis().max(1);
        let held = if self.addresses.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = self.addresses.iter().map(Ipv4Addr::to_string).collect();
            format!(" elements = {{ {} }};", list.join(", "))
        };
        let held6 = if self.addresses6.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = self.addresses6.iter().map(|a| a.to_string()).collect();
            format!(" elements = {{ {} }};", list.join(", "))
        };
        let mut text = format!(
            "table netdev {TABLE} {{\n  set lease {{ type ifname; flags timeout; }}\n  set held {{ type ipv4_addr;{held} }}\n  set held6 {{ type ipv6_addr;{held6} }}\n"
        );
        for (n, interface) in self.interfaces.iter().enumerate() {
            text.push_str(&format!(
                "  chain out{n} {{\n    type filter hook egress device \"{interface}\" priority 0;\n    ether type {RENEWAL_ETHERTYPE:#06x} update @lease {{ meta oifname timeout {ms}ms }} drop\n    meta oifname != @lease arp saddr ip @held drop\n    meta oifname != @lease ip saddr @held drop\n    meta oifname != @lease ip6 saddr @held6 drop\n  }}\n"
            ));
        }
        text.push_str("}\n");
        text
    }

    /// Loads the table in the current network namespace, replacing an older one in the same
    /// transaction (so no moment passes unguarded): from here on the addresses answer only
    /// while renewed.
    pub fn install(&self) -> Result<(), KernelLeaseError> {
        // Declaring the table first makes the deletion valid when there is none.
        nft(&format!(
            "table netdev {TABLE} {{}}\ndelete table netdev {TABLE}\n{}",
            self.ruleset()
        ))
    }
}

/// Whether the netdev table `name` exists in the current network namespace. Asks for the
/// tables' names only: listing a table prints every element of its sets, 10,240 of them for
/// the lease's at that size.
pub fn exists(name: &str) -> bool {
    Command::new("nft")
        .args(["list", "tables", "netdev"])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.split_whitespace().eq(["table", "netdev", name]))
        })
}

/// Removes the table, if there is one: the addresses answer as the kernel would without it.
pub fn remove() {
    let _ = nft(&format!("delete table netdev {TABLE}\n"));
}

pub(crate) fn nft(script: &str) -> Result<(), KernelLeaseError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(KernelLeaseError::NoNft)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(KernelLeaseError::NoNft)?;
    }
    let out = child.wait_with_output().map_err(KernelLeaseError::NoNft)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(KernelLeaseError::Refused(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

/// A renewal frame from `mac`: broadcast, of [`RENEWAL_ETHERTYPE`], padded to 60 bytes. The egress
/// chain drops it after reading it.
pub fn renewal_frame(mac: [u8; 6]) -> [u8; 60] {
    // Padded to Ethernet's minimum so no driver pads it with anything of its own.
    let mut frame = [0u8; 60];
    frame[0..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&RENEWAL_ETHERTYPE.to_be_bytes());
    frame[14..20].copy_from_slice(b"dvipLR");
    frame
}

/// Sends renewals, one frame per interface each time.
#[derive(Default)]
pub struct Renewer {
    senders: crate::announce::RawSenders,
}

impl Renewer {
    /// Renews the lease on every one of `interfaces`.
    pub fn renew(&mut self, interfaces: &[String]) -> Result<(), KernelLeaseError> {
        for interface in interfaces {
            let (mac, sender) = self.senders.on(interface).map_err(|e| match e {
                None => KernelLeaseError::NoInterface(interface.clone()),
                Some(source) => KernelLeaseError::Send {
                    interface: interface.clone(),
                    source,
                },
            })?;
            match sender.send_to(&renewal_frame(*mac), None) {
                Some(Ok(())) => {}
                // The egress chain drops the frame once it has read it, and the kernel says
                // so: the renewal went through.
                Some(Err(e)) if e.raw_os_error() == Some(nix::errno::Errno::ENOBUFS as i32) => {}
                Some(Err(source)) => {
                    self.senders.forget(interface);
                    return Err(KernelLeaseError::Send {
                        interface: interface.clone(),
                        source,
                    });
                }
                None => {
                    self.senders.forget(interface);
                    return Err(KernelLeaseError::Send {
                        interface: interface.clone(),
                        source: std::io::Error::other("the raw socket refused the frame"),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ruleset_guards_every_interface_with_one_lease() {
        let lease = KernelLease {
            interfaces: vec!["eth0".into(), "eth1".into()],
            addresses: vec![[198, 51, 100, 10].into(), [198, 51, 100, 11].into()],
            addresses6: vec!["2001:db8::10".parse().expect("an address")],
            timeout: Duration::from_millis(12),
        };
        let text = lease.ruleset();
        assert!(text.contains("elements = { 198.51.100.10, 198.51.100.11 }"));
        assert!(text.contains("set held6 { type ipv6_addr; elements = { 2001:db8::10 }; }"));
        assert_eq!(text.matches("ip6 saddr @held6 drop").count(), 2);
        assert_eq!(text.matches("type filter hook egress").count(), 2);
        assert!(text.contains("device \"eth1\""));
        assert!(text.contains("ether type 0x88b5 update @lease { meta oifname timeout 12ms } drop"));
        assert_eq!(renewal_frame([2, 0, 0, 0, 0, 1])[12..14], [0x88, 0xb5]);
    }
}
