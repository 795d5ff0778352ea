//! Golden tests: every configuration example of the spec parses to the model in its `.json`.
//!
//! Regenerate the expected files with `UPDATE_EXPECT=1 cargo test -p dvip-config --test it
//! golden` and review every diff.

use crate::{check_file, conf_files};

#[test]
fn every_spec_example_parses_to_its_expected_model() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut mismatched = Vec::new();
    for conf in conf_files("testdata/golden") {
        let checked = check_file(&conf);
        let actual =
            serde_json::to_string_pretty(&checked.to_json()).expect("JSON values serialize") + "\n";
        let expected_path = conf.with_extension("json");
        if update {
            std::fs::write(&expected_path, &actual).expect("writing golden file");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with UPDATE_EXPECT=1 to create it)",
                expected_path.display()
            )
        });
        if expected != actual {
            mismatched.push(format!("--- {}\n{actual}", expected_path.display()));
        }
    }
    assert!(
        mismatched.is_empty(),
        "golden mismatch (UPDATE_EXPECT=1 regenerates):\n{}",
        mismatched.join("\n")
    );
}

#[test]
fn spec_examples_are_valid_except_the_one_the_spec_forbids() {
    for conf in conf_files("testdata/golden") {
        let checked = check_file(&conf);
        let errors: Vec<String> = checked
            .of(dvip_config::Severity::Error)
            .map(|d| d.render(&checked.sources))
            .collect();
        assert!(
            errors.is_empty(),
            "{}:\n{}",
            conf.display(),
            errors.join("\n")
        );
    }
}

#[test]
fn overview_keeps_the_stanzas_dvip_ignores() {
    let checked = check_file("testdata/golden/overview-2x.conf".as_ref());
    let keywords: Vec<String> = checked
        .config
        .document
        .iter()
        .map(|item| match item {
            dvip_config::Item::Stanza(s) => s.keyword.text.clone(),
            dvip_config::Item::Option(o) => o.key.text.clone(),
            dvip_config::Item::Bare(b) => b.keyword.text.clone(),
        })
        .collect();
    assert_eq!(
        keywords,
        [
            "Security",
            "ESMTP_Listener",
            "Binding",
            "Logger",
            "Logger",
            "Logger"
        ]
    );
    let config = &checked.config;
    assert_eq!(config.log_destinations.len(), 4);
    assert!(config
        .log_destinations
        .iter()
        .all(|d| d.subscribers == ["master"]));
    let replicated: Vec<&str> = config.replicate.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        replicated,
        ["inbound_cidr", "outbound_cidr", "outbound_domains"]
    );
    assert_eq!(
        config.nodename, "node1",
        "the host name up to its first dot"
    );
}

#[test]
fn the_address_is_the_unit_of_ownership() {
    let checked = check_file("testdata/golden/follow-by-address-3x.conf".as_ref());
    let follower = &checked.config.addresses[0].managed;
    assert_eq!(follower.address.to_string(), "10.1.1.1");
    assert_eq!(
        follower.listener_ports.iter().copied().collect::<Vec<_>>(),
        [25, 587]
    );
    assert_eq!(follower.group_leader().to_string(), "10.2.1.1");
}

#[test]
fn an_upgraded_listener_is_reported_as_a_note() {
    let checked = check_file("testdata/golden/upgrade-2x.conf".as_ref());
    assert!(checked.is_valid());
    let notes: Vec<_> = checked.of(dvip_config::Severity::Note).collect();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].code, dvip_config::Code::Upgraded);
    assert!(checked.config.addresses[0].upgraded);
}
