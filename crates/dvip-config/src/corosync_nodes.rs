//! The node list of a corosync.conf: each node's name and first ring address.
//!
//! Owns reading `nodelist { node { name: ... ring0_addr: ... } }` out of corosync's own file,
//! so an aggregator on a cluster host can pull from every node without listing them again. It
//! is pure (it is given the text) and must not talk to corosync.

use std::net::IpAddr;

/// A node of the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorosyncNode {
    pub name: String,
    pub address: IpAddr,
}

/// Why the list could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodelistError {
    /// There is no `nodelist` section.
    NoNodelist,
    /// A node without `name` or with a `ring0_addr` that is not an address (its line).
    BadNode { line: usize, why: String },
}

/// The nodes of `text`, in file order.
pub fn nodelist(text: &str) -> Result<Vec<CorosyncNode>, NodelistError> {
    let mut depth = 0usize;
    let mut in_nodelist = None;
    let mut seen_nodelist = false;
    let mut current: Option<(usize, Option<String>, Option<String>)> = None;
    let mut nodes = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(section) = line.strip_suffix('{').map(str::trim) {
            depth += 1;
            if depth == 1 && section == "nodelist" {
                in_nodelist = Some(depth);
                seen_nodelist = true;
            } else if in_nodelist == Some(depth - 1) && section == "node" {
                current = Some((i + 1, None, None));
            }
            continue;
        }
        if line == "}" {
            if let (Some((at, name, address)), true) = (&current, in_nodelist == Some(depth - 1)) {
                let name = name.clone().ok_or(NodelistError::BadNode {
                    line: *at,
                    why: "a node has no `name`".into(),
                })?;
                let text = address.clone().ok_or(NodelistError::BadNode {
                    line: *at,
                    why: format!("node {name} has no `ring0_addr`"),
                })?;
                let address = text.parse().map_err(|_| NodelistError::BadNode {
                    line: *at,
                    why: format!("node {name}'s ring0_addr `{text}` is not an address"),
                })?;
                nodes.push(CorosyncNode { name, address });
                current = None;
            }
            if in_nodelist == Some(depth) {
                in_nodelist = None;
            }
            depth = depth.saturating_sub(1);
            continue;
        }
        if let (Some((_, name, address)), Some((key, value))) = (&mut current, line.split_once(':'))
        {
            match key.trim() {
                "name" => *name = Some(value.trim().to_owned()),
                "ring0_addr" => *address = Some(value.trim().to_owned()),
                _ => {}
            }
        }
    }
    if seen_nodelist {
        Ok(nodes)
    } else {
        Err(NodelistError::NoNodelist)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_gives_its_three_nodes() {
        let text = include_str!("../../../packaging/corosync.conf.example");
        let nodes = nodelist(text).unwrap();
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["node1", "node2", "node3"]);
        assert_eq!(nodes[0].address, "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_nameless_node_or_no_nodelist_is_refused() {
        assert_eq!(
            nodelist("totem {\n version: 2\n}\n"),
            Err(NodelistError::NoNodelist)
        );
        let nameless = "nodelist {\n  node {\n    ring0_addr: 198.51.100.1\n  }\n}\n";
        assert!(matches!(
            nodelist(nameless),
            Err(NodelistError::BadNode { line: 2, .. })
        ));
    }
}
