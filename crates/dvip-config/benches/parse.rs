//! Parse and validate large configurations.
//!
//! `cargo bench -p dvip-config --bench parse`. The goal: a node's largest allowed address set
//! (10,240 DuraVIP addresses) parses and validates in under 50 ms. Baselines measured in the
//! same run: the same config at a tenth of the size (does the cost grow linearly?) and
//! `serde_json` reading the JSON model of the same config (what a generic, tuned parser pays
//! for the same information). Numbers and ratios go in BENCHMARKS.md.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;

use dvip_config::{load_str, LoadOptions};

fn main() {
    divan::main();
}

fn address(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i as u32)
}

/// 3.x dialect: one DuraVIP binding and one listener per address, a third of the listeners
/// following a binding on another address.
fn config_3x(count: usize) -> String {
    let mut text =
        String::from("cluster { Topology \"198.18.0.0/15\" { interface = \"eth0\" } }\n");
    for i in 0..count {
        let _ = writeln!(
            text,
            "Binding \"b{i}\" {{ Enable_Duravip = true  Bind_Address = \"{}\"  Binding_Group = g{} }}",
            address(i),
            i % 16
        );
    }
    text.push_str("ESMTP_Listener {\n");
    for i in 0..count {
        let _ = writeln!(
            text,
            "  Listen \"{}:25\" {{ Enable_Duravip = true }}",
            address(i)
        );
    }
    text.push_str("}\n");
    text
}

/// 2.x dialect: a listener list with ACL blocks.
fn config_2x(count: usize) -> String {
    let mut text = String::from(
        "Logger cluster/ec_cluster cluster { 198.18.0.0/15 [ interface = \"eth0\" ] }\n",
    );
    text.push_str("ESMTP_Listener = (\n");
    for i in 0..count {
        let _ = writeln!(
            text,
            "  {}:25,200 <duravip=\"enabled\"> [ 0.0.0.0/0 = ( personality [ idle_time = 300 ] continue ) ]",
            address(i)
        );
    }
    text.push_str(")\n");
    text
}

fn check(text: &str) -> usize {
    let checked = load_str(Path::new("bench.conf"), text, &LoadOptions::new("node1"));
    assert!(checked.is_valid(), "the benchmark config is valid");
    checked.config.addresses.len()
}

#[divan::bench(args = [1_024, 10_240])]
fn parse_and_validate_3x(bencher: divan::Bencher<'_, '_>, count: usize) {
    let text = config_3x(count);
    bencher
        .counter(divan::counter::BytesCount::of_str(&text))
        .bench(|| check(divan::black_box(&text)));
}

#[divan::bench(args = [1_024, 10_240])]
fn parse_and_validate_2x(bencher: divan::Bencher<'_, '_>, count: usize) {
    let text = config_2x(count);
    bencher
        .counter(divan::counter::BytesCount::of_str(&text))
        .bench(|| check(divan::black_box(&text)));
}

/// Baseline: serde_json reading the JSON model `dvip config check --json` prints for the
/// same 3.x config.
#[divan::bench(args = [1_024, 10_240])]
fn baseline_serde_json_of_the_model(bencher: divan::Bencher<'_, '_>, count: usize) {
    let checked = load_str(
        Path::new("bench.conf"),
        &config_3x(count),
        &LoadOptions::new("node1"),
    );
    let json = serde_json::to_string(&checked.to_json()).expect("the model serializes");
    bencher
        .counter(divan::counter::BytesCount::of_str(&json))
        .bench(|| {
            serde_json::from_str::<serde_json::Value>(divan::black_box(&json))
                .map(|v| v.is_object())
        });
}
