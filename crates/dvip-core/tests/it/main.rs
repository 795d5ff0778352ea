//! Integration tests of the core: the election's golden tables and its properties.

mod election_golden;
mod election_props;
mod node;
mod takeover;
mod wire_fuzz;

use std::collections::BTreeMap;
use std::path::Path;

use dvip_core::{Entity, Member, NodeName};

/// A member built from a configuration text, as the node would announce it.
pub(crate) fn member_from_config(name: &str, text: &str) -> Member {
    let checked =
        dvip_config::load_str(Path::new(name), text, &dvip_config::LoadOptions::new(name));
    let errors: Vec<String> = checked
        .of(dvip_config::Severity::Error)
        .map(|d| d.render(&checked.sources))
        .collect();
    assert!(
        errors.is_empty(),
        "config of {name} is invalid:\n{}",
        errors.join("\n")
    );
    Member::new(checked.config.managed_addresses().map(Entity::from))
}

pub(crate) type Members = BTreeMap<NodeName, Member>;
