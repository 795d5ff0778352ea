//! An aggregator's file: defaults, the Manager chosen, and nodes taken from corosync's list.

use std::path::Path;

use dvip_config::collect::load_collect;
use dvip_config::MemoryFiles;

fn nodes(text: &str, name: Option<&str>) -> Vec<(String, String, Vec<String>)> {
    let mut files = MemoryFiles::new();
    files.insert(Path::new("/etc/dvip/collect.conf"), text);
    files.insert(
        Path::new("/etc/corosync/corosync.conf"),
        include_str!("../../../../packaging/corosync.conf.example"),
    );
    let checked = load_collect(
        Path::new("/etc/dvip/collect.conf"),
        name,
        "aggregator",
        &files,
    );
    let config = checked.config.unwrap_or_else(|| {
        panic!(
            "{}",
            checked
                .diagnostics
                .iter()
                .map(|d| d.render(&checked.sources))
                .collect::<String>()
        )
    });
    config
        .nodes
        .into_iter()
        .map(|n| (n.name, n.address.to_string(), n.subscribers))
        .collect()
}

#[test]
fn nodes_come_from_corosync_s_list_and_a_listed_node_overrides_its_entry() {
    let got = nodes(
        r#"
Logs {
  Manager "east" {
    corosync_conf = "/etc/corosync/corosync.conf"
    Node "node2" { address = "198.51.100.12:14802"  Subscriber = ( archive ) }
  }
  Manager "west" { Node "node9" { address = "198.51.100.19" } }
}
"#,
        Some("east"),
    );
    let default = vec!["east".to_owned(), "master".to_owned()];
    assert_eq!(
        got,
        [
            ("node1".into(), "192.0.2.1:4802".into(), default.clone()),
            (
                "node2".into(),
                "198.51.100.12:14802".into(),
                vec!["archive".into()]
            ),
            ("node3".into(), "192.0.2.3:4802".into(), default),
        ]
    );
}

#[test]
fn the_defaults_are_the_documented_ones() {
    let mut files = MemoryFiles::new();
    files.insert(
        Path::new("/c.conf"),
        r#"Logs { Manager "collector" { Node "node1" { address = "198.51.100.10" } } }"#,
    );
    let config = load_collect(Path::new("/c.conf"), None, "aggregator", &files)
        .config
        .expect("valid");
    assert_eq!(config.logfile.text(), "/var/log/dvip/%Y/%m/%d/%{l}/%{n}");
    assert_eq!((config.file_mode, config.dir_mode), (0o640, 0o755));
    assert_eq!(config.state_dir, Path::new("/var/lib/dvip/collect"));
    assert_eq!(config.tls_dir, Path::new("/etc/dvip/tls"));
    assert_eq!(config.nodes[0].subscribers, ["collector", "master"]);
}

#[test]
fn without_a_name_the_manager_named_as_this_host_is_chosen() {
    let text = r#"
Logs {
  Manager "east" { Node "node1" { address = "198.51.100.10" } }
  Manager "west" { Node "node9" { address = "198.51.100.19" } }
}
"#;
    let mut files = MemoryFiles::new();
    files.insert(Path::new("/c.conf"), text);
    let chosen = load_collect(Path::new("/c.conf"), None, "west.example.net", &files);
    assert_eq!(chosen.config.expect("valid").name, "west");
    let unknown = load_collect(Path::new("/c.conf"), None, "north.example.net", &files);
    assert!(unknown.config.is_none());
    assert!(
        unknown.diagnostics[0]
            .message
            .contains("none is named after this host (`north`)"),
        "{}",
        unknown.diagnostics[0].message
    );
}
