//! `dvip tls`: the cluster's CA and the certificates of nodes and aggregators.
//!
//! Owns turning `dvip_tls`'s results into text or JSON and exit codes. It must not make
//! certificates itself: that is `dvip_tls`.

use dvip_tls::{Issued, TlsDir};

use crate::cli::TlsCommand;
use crate::Outcome;

pub(crate) fn run(command: TlsCommand) -> Outcome {
    let (made, json, what) = match command {
        TlsCommand::Init {
            cluster,
            common,
            days,
            force,
        } => (
            TlsDir::new(&common.dir).init(&cluster, days, force),
            common.json,
            "CA",
        ),
        TlsCommand::Issue {
            name,
            also,
            common,
            days,
        } => (
            TlsDir::new(&common.dir).issue(&name, &also, days),
            common.json,
            "certificate",
        ),
    };
    match made {
        Ok(issued) => {
            report(&issued, json, what);
            Outcome::Ok
        }
        Err(e) => {
            eprintln!("dvip tls: {e}");
            Outcome::Failed
        }
    }
}

fn report(issued: &Issued, json: bool, what: &str) {
    if json {
        match serde_json::to_string_pretty(issued) {
            Ok(text) => say!("{text}"),
            Err(e) => eprintln!("dvip tls: {e}"),
        }
        return;
    }
    say!(
        "{what} for {}: {} (key {}), valid until {}\nsha256 {}",
        issued.name,
        issued.certificate.display(),
        issued.key.display(),
        issued.not_after,
        issued.sha256
    );
}
