//! What a configuration means: defaults, dialects, case, ports, and how a diagnostic reads.

use std::path::Path;

use dvip_config::{load_str, LoadOptions};

use crate::HOSTNAME;

#[test]
fn an_error_shows_location_source_line_caret_and_hint() {
    let text = "cluster {\n  Topology \"198.51.100.0/24\" { interface = \"eth0\" }\n}\nBinding \"a\" {\n\tEnable_Duravip = maybe\n}\n";
    let checked = load_str(Path::new("node.conf"), text, &LoadOptions::new(HOSTNAME));
    assert_eq!(checked.diagnostics.len(), 1);
    let rendered = checked.diagnostics[0].render(&checked.sources);
    let expected = "node.conf:5:19: error: `maybe` is not a yes/no value\n  |\n5 | \tEnable_Duravip = maybe\n  | \t                 ^^^^^\n  = hint: write true or false (yes/no, on/off and enabled/disabled also work)\n";
    assert_eq!(rendered, expected);
}

#[test]
fn keywords_and_option_names_are_case_insensitive() {
    let text = "CLUSTER { TOPOLOGY \"198.51.100.0/24\" { INTERFACE = eth0 CIDRMASK = 32 } ARP_ALL_HOSTS = OFF }\n\
                BINDING \"a\" { ENABLE_DURAVIP = Yes BIND_ADDRESS = 198.51.100.9 DURAVIP_PREFERENCE = n2 }\n\
                esmtp_listener { LISTEN \"198.51.100.9:587\" { enable_duravip = \"on\" } }\n";
    let checked = load_str(Path::new("upper.conf"), text, &LoadOptions::new(HOSTNAME));
    assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
    let config = &checked.config;
    assert!(!config.cluster.arp_all_hosts);
    let a = &config.addresses[0].managed;
    assert_eq!(a.preference.as_deref(), Some("n2"));
    assert_eq!(a.listener_ports.iter().copied().collect::<Vec<_>>(), [587]);
}

#[test]
fn defaults_fill_every_cluster_option() {
    let checked = load_str(
        Path::new("empty.conf"),
        "",
        &LoadOptions::new("mx7.example.net"),
    );
    assert!(checked.is_valid());
    let json = checked.to_json();
    assert_eq!(json["nodename"], "mx7");
    assert_eq!(json["nodename_source"], "hostname");
    assert_eq!(json["cluster"]["cluster_group"], "ec_cluster");
    assert_eq!(json["cluster"]["control_group"], "ec_console");
    assert_eq!(json["cluster"]["cluster_listener"], "*:4802");
    assert_eq!(json["cluster"]["arp_all_hosts"], true);
    assert_eq!(json["cluster"]["view_mature_time_ms"], 1000);
    assert_eq!(json["addresses"], serde_json::json!([]));
}

#[test]
fn a_listener_without_a_port_listens_on_25_and_ipv6_hints_default_to_one_host() {
    let text = "cluster { Topology \"2001:db8:5::/64\" { interface = eth0 } }\n\
                ESMTP_Listener = ( \"[2001:db8:5::25]\" <duravip=\"enabled\"> 2001:db8:5::26 <duravip=yes> )\n";
    let checked = load_str(Path::new("v6.conf"), text, &LoadOptions::new(HOSTNAME));
    assert!(checked.is_valid(), "{:?}", checked.diagnostics);
    let a = &checked.config.addresses;
    assert_eq!(a.len(), 2);
    assert_eq!(
        a[0].managed
            .listener_ports
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        [25]
    );
    assert_eq!(a[0].managed.plumb.cidrmask, 128);
}

#[test]
fn eccluster_listener_sets_the_cluster_listener() {
    let text =
        "ECCluster_Listener { Listen \"198.51.100.1:4812\" { } }\ncluster { nodename = n1 }\n";
    let checked = load_str(Path::new("l.conf"), text, &LoadOptions::new(HOSTNAME));
    assert!(checked.is_valid(), "{:?}", checked.diagnostics);
    assert_eq!(
        checked.config.cluster.cluster_listener.to_string(),
        "198.51.100.1:4812"
    );
    assert_eq!(checked.config.nodename, "n1");
}

#[test]
fn bindings_inside_a_binding_group_are_found() {
    let text = "cluster { Topology \"198.51.100.0/24\" { interface = eth0 } }\n\
                Binding_Group \"companya\" { Binding \"a-1\" { Enable_Duravip = true Bind_Address = 198.51.100.1 } }\n";
    let checked = load_str(Path::new("g.conf"), text, &LoadOptions::new(HOSTNAME));
    assert!(checked.is_valid(), "{:?}", checked.diagnostics);
    assert_eq!(
        checked.config.addresses[0]
            .managed
            .bindings
            .iter()
            .next()
            .map(String::as_str),
        Some("a-1")
    );
}

#[test]
fn one_address_carries_several_binding_names_and_listener_ports() {
    let text = "cluster { Topology \"198.51.100.0/24\" { interface = eth0 } }\n\
                Binding \"a\" { Enable_Duravip = true Bind_Address = 198.51.100.9 }\n\
                Binding \"b\" { Bind_Address = 198.51.100.9 }\n\
                ESMTP_Listener = ( 198.51.100.9:25 198.51.100.9:587 <duravip=on> )\n";
    let checked = load_str(Path::new("shared.conf"), text, &LoadOptions::new(HOSTNAME));
    assert!(checked.is_valid(), "{:?}", checked.diagnostics);
    assert_eq!(checked.config.addresses.len(), 1);
    let a = &checked.config.addresses[0];
    assert_eq!(
        a.managed
            .bindings
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(
        a.managed.listener_ports.iter().copied().collect::<Vec<_>>(),
        [25, 587]
    );
    assert!(
        a.upgraded,
        "binding b and listener :25 were made DuraVIP by the others"
    );
    let upgraded: Vec<_> = checked.of(dvip_config::Severity::Note).collect();
    assert_eq!(upgraded.len(), 2, "one note per upgraded service");
}
