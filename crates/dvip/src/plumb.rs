//! `dvip plumb`: look at and clean up the addresses dvip added to this machine.
//!
//! Owns the report format and the runtime for these one-shot netlink calls; the netlink work
//! itself is dvipd's plumbing module, the same code the daemon runs.

use std::io::Write as _;
use std::time::Duration;

use dvip_plumb::plumb::{PlumbError, Plumber};
use serde_json::json;

use crate::cli::PlumbCommand;
use crate::Outcome;

pub(crate) fn run(command: PlumbCommand) -> Outcome {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dvip plumb: cannot start: {e}");
            return Outcome::Failed;
        }
    };
    match runtime.block_on(execute(command)) {
        Ok(()) => Outcome::Ok,
        Err(e) => {
            eprintln!("dvip plumb: {e}");
            if matches!(e, PlumbError::Kernel { .. } | PlumbError::Socket(_)) {
                eprintln!("  = hint: changing addresses needs root (CAP_NET_ADMIN)");
            }
            Outcome::Failed
        }
    }
}

async fn execute(command: PlumbCommand) -> Result<(), PlumbError> {
    let lifetime = match &command {
        PlumbCommand::Add { lifetime, .. } => Duration::from_secs(u64::from(*lifetime)),
        _ => dvip_plumb::plumb::ADDRESS_LIFETIME_DEFAULT,
    };
    let mut plumber = Plumber::connect(lifetime)?;
    let mut stdout = std::io::stdout().lock();
    match command {
        PlumbCommand::List { json } => {
            let ours = plumber.ours().await?;
            if json {
                let list: Vec<_> = ours
                    .iter()
                    .map(|p| {
                        json!({
                            "address": p.address,
                            "prefix_len": p.prefix_len,
                            "interface_index": p.interface_index,
                            "valid_secs": p.valid_secs,
                        })
                    })
                    .collect();
                let _ = writeln!(stdout, "{}", serde_json::Value::Array(list));
            } else if ours.is_empty() {
                let _ = writeln!(stdout, "no address on this machine was added by dvip");
            } else {
                for p in &ours {
                    let left = p
                        .valid_secs
                        .map_or_else(|| "forever".to_owned(), |s| format!("{s} s left"));
                    let _ = writeln!(
                        stdout,
                        "{}/{} on interface #{} ({left})",
                        p.address, p.prefix_len, p.interface_index
                    );
                }
            }
        }
        PlumbCommand::Clean => {
            let removed = plumber.remove_all_ours().await?;
            for p in &removed {
                let _ = writeln!(stdout, "removed {}/{}", p.address, p.prefix_len);
            }
            let _ = writeln!(stdout, "{} address(es) removed", removed.len());
        }
        PlumbCommand::Add {
            address: (address, prefix),
            interface,
            ..
        } => {
            plumber.plumb(address, prefix, &interface).await?;
            let _ = writeln!(stdout, "plumbed {address}/{prefix} on {interface}");
        }
        PlumbCommand::Remove { address } => {
            let removed = plumber.unplumb(address).await?;
            let _ = writeln!(
                stdout,
                "{}",
                if removed {
                    format!("removed {address}")
                } else {
                    format!("{address} was not plumbed by dvip")
                }
            );
        }
    }
    Ok(())
}
