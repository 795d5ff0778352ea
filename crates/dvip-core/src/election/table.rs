//! The plan as a table an operator reads: one line per address.
//!
//! Owns the text layout shared by `dvip plan`, `dvip show`, `dvip config check --addresses`
//! and the election's golden tests. It must not decide anything.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use super::Plan;
use crate::entity::NodeName;

impl Plan {
    /// `ADDRESS OWNER REASON MARKS CANDIDATES SERVICES`, columns aligned; the owner is starred
    /// among the candidates.
    pub fn table(&self) -> String {
        self.rows(None)
    }

    /// The same with a `HERE` column after the owner, as `dvip show` prints it: `yes` for the
    /// addresses in `here` (held by the node asking), `NOT PLUMBED` for those of them also in
    /// `failing` (held, but their plumb failed: dark until a retry works or they move); and
    /// a `NEXT` column: who takes the address if its holder fails now (`next`). An address
    /// in `readied` (plumbed here ahead of need, silent: `dvipd --pre-plumb`) is `readied`.
    pub fn table_here(
        &self,
        here: &BTreeSet<IpAddr>,
        failing: &BTreeSet<IpAddr>,
        readied: &BTreeSet<IpAddr>,
        next: &BTreeMap<IpAddr, Option<NodeName>>,
    ) -> String {
        self.rows(Some(Here {
            here,
            failing,
            readied,
            next,
        }))
    }

    fn rows(&self, here: Option<Here<'_>>) -> String {
        let dash = |s: String| if s.is_empty() { "-".to_owned() } else { s };
        let mut header: Vec<String> = [
            "ADDRESS",
            "OWNER",
            "REASON",
            "MARKS",
            "CANDIDATES",
            "SERVICES",
        ]
        .map(str::to_owned)
        .to_vec();
        if here.is_some() {
            header.insert(2, "HERE".to_owned());
            header.insert(3, "NEXT".to_owned());
        }
        let mut rows = vec![header];
        for (address, d) in &self.addresses {
            let candidates: Vec<String> = d
                .candidates
                .iter()
                .map(|c| {
                    if Some(c) == d.owner.as_ref() {
                        format!("*{c}")
                    } else {
                        c.to_string()
                    }
                })
                .collect();
            let mut services: Vec<String> = d.bindings().iter().cloned().collect();
            services.extend(d.listener_ports().iter().map(|p| format!(":{p}")));
            let reason = match d.follows {
                Some(leader) => format!("follows {leader}"),
                None => d.reason.as_str().to_owned(),
            };
            let mut row = vec![
                address.to_string(),
                d.owner.as_deref().unwrap_or("-").to_owned(),
                reason,
                dash(d.marks.names().join(",")),
                dash(candidates.join(",")),
                dash(services.join(",")),
            ];
            if let Some(Here {
                here,
                failing,
                readied,
                next,
            }) = here
            {
                let flag = match (here.contains(address), failing.contains(address)) {
                    (true, true) => "NOT PLUMBED",
                    (true, false) => "yes",
                    (false, _) if readied.contains(address) => "readied",
                    (false, _) => "-",
                };
                row.insert(2, flag.to_owned());
                let next = next.get(address).cloned().flatten();
                row.insert(3, next.unwrap_or_else(|| "-".to_owned()));
            }
            rows.push(row);
        }
        columns(&rows)
    }
}

/// What the node asking adds to the table.
#[derive(Clone, Copy)]
struct Here<'a> {
    here: &'a BTreeSet<IpAddr>,
    failing: &'a BTreeSet<IpAddr>,
    readied: &'a BTreeSet<IpAddr>,
    next: &'a BTreeMap<IpAddr, Option<NodeName>>,
}

/// Lays rows out in columns two spaces apart, each as wide as its widest cell (counted in
/// characters), trailing spaces trimmed.
pub fn columns<R: AsRef<[String]>>(rows: &[R]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.as_ref().iter().enumerate() {
            let width = cell.chars().count();
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(width),
                None => widths.push(width),
            }
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, w) in row.as_ref().iter().zip(&widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
