//! `arp_all_hosts = false`: announcements go only to the neighbours the kernel knows on the
//! link, and `arp-show` reports what was sent.

use std::time::Duration;

use dvip_netns::Netns;

use crate::{call, config, eventually, wait_client_learns, Daemon};

const FAKE_OLD_OWNER: &str = "02:00:00:00:00:99";

/// The `arp-show` entry of `address`, once it reports `rounds` announcements.
fn announced(
    socket: &std::path::Path,
    address: &str,
    rounds: u64,
    daemon: &Daemon,
) -> serde_json::Value {
    let mut entry = serde_json::Value::Null;
    eventually(Duration::from_secs(5), daemon, || {
        if !socket.exists() {
            return Err("no console socket yet".to_owned());
        }
        let report = call(socket, &serde_json::json!({"command": "arp-show"}));
        if report["mode"] != "neighbours" {
            return Err(format!("wrong mode: {report}"));
        }
        let found = report["addresses"]
            .as_array()
            .and_then(|list| list.iter().find(|a| a["address"] == address).cloned());
        match found {
            Some(a) if a["announcements"] == rounds => {
                entry = a;
                Ok(())
            }
            other => Err(format!("{address} announced: {other:?}")),
        }
    });
    entry
}

#[test]
fn without_arp_all_hosts_only_known_neighbours_are_told() {
    let ns = Netns::with_client("dvipd-n");
    ns.ip(&["addr", "add", "198.51.100.1/24", "dev", "dv0"]);
    ns.client_remembers("198.51.100.11", FAKE_OLD_OWNER);
    let conf = config(
        &ns,
        r#"
cluster { nodename = solo  arp_all_hosts = false  announce_count = 2  announce_interval = 100ms  Topology "198.51.100.0/24" { interface = "dv0" } }
Binding "a" { Enable_Duravip = true  Bind_Address = 198.51.100.11 }
"#,
    );
    let socket = conf.with_extension("sock");
    let daemon = Daemon::start(&ns, &conf);

    // The node knows no neighbour yet: both announcements (announce_count = 2), no frame, and
    // the client still points at the old owner once they are done.
    let silent = announced(&socket, "198.51.100.11", 2, &daemon);
    assert_eq!(silent["frames_last"], 0, "{silent}");
    assert!(
        ns.client_neighbours()
            .contains(&("198.51.100.11".to_owned(), FAKE_OLD_OWNER.to_owned())),
        "an unknown host was told: {:?}",
        ns.client_neighbours()
    );

    // Once the node knows the client, a new acquisition reaches it, addressed to its MAC.
    ns.ip(&[
        "neigh",
        "replace",
        "198.51.100.200",
        "lladdr",
        &ns.client_mac(),
        "dev",
        "dv0",
        "nud",
        "permanent",
    ]);
    for command in ["standby", "online"] {
        assert_eq!(
            call(&socket, &serde_json::json!({"command": command}))["ok"],
            true
        );
    }
    wait_client_learns(&ns, &["198.51.100.11"], &ns.mac(), &daemon);
    let told = announced(&socket, "198.51.100.11", 2, &daemon);
    assert_eq!(told["frames_last"], 1, "{told}");
    assert_eq!(told["interface"], "dv0");

    let info = call(&socket, &serde_json::json!({"command": "info"}));
    assert_eq!(info["arp_all_hosts"], false, "{info}");
    assert_eq!(info["held"], 1, "{info}");
    assert_eq!(info["bus"]["kind"], "standalone", "{info}");
}
