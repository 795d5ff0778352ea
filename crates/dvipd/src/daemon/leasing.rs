//! The loop's side of dvip's own heartbeats (docs/leases.md): hands the detector's verdicts
//! to the core, and tells the heartbeat thread what the core decided (the plan a promise
//! names, the view and every member's epoch, whole after every input, and whether the node
//! may answer).
//!
//! Owns the order in which those reach each side: a promise is recorded by the core before
//! the detector makes it, so it never names a plan older than what the core has acted on.
//! It must not touch the socket or the kernel's lease: the thread does.

use std::sync::mpsc;
use std::sync::Arc;

use tracing::{error, info, warn};

use super::Daemon;
use crate::heartbeat::{Gate, Order, Verdict};
use crate::kernel_lease::KernelLease;
use crate::nft_watch::TableNews;

/// The loop's ends of the heartbeat thread.
pub(super) struct Leasing {
    pub(super) orders: mpsc::Sender<Order>,
    pub(super) gate: Arc<Gate>,
    /// Lapses the core has been told of.
    pub(super) lapses_read: u64,
}

/// The next verdict, or never when there are no heartbeats.
pub(super) async fn next_verdict(
    verdicts: &mut Option<tokio::sync::mpsc::UnboundedReceiver<Verdict>>,
) -> Option<Verdict> {
    match verdicts {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The next report of nftables' tables, or never when nobody watches.
pub(super) async fn next_table_news(
    news: &mut Option<tokio::sync::mpsc::UnboundedReceiver<TableNews>>,
) -> Option<TableNews> {
    match news {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Daemon {
    /// A verdict of the detector, for the core.
    pub(super) async fn lease_verdict(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Due { about, epoch } => {
                let plan = self.node.lease_plan();
                self.node.handle_promised(&about, epoch, plan);
                self.order(Order::Promise { about, epoch, plan });
            }
            Verdict::Takeover(t) => match self.node.handle_takeover(&t.about, t.epoch, t.plan) {
                Ok(taken) => info!(about = %t.about, taken, "took over"),
                Err(why) => info!(about = %t.about, why = why.name(), "takeover left to the bus"),
            },
            Verdict::EndEpoch { about, epoch } => self.node.handle_end_epoch(&about, epoch),
            Verdict::Answering => self.announce_refused().await,
            Verdict::Lapsed { count } => {
                warn!("this node's lease lapsed: answering for nothing until it is back");
                self.node.handle_lease_lapsed();
                if let Some(leasing) = self.leasing.as_mut() {
                    leasing.lapses_read = count;
                }
            }
        }
        self.drive().await;
    }

    /// After every input: the core's view and epochs, whole (a bus lost: no view), and
    /// whether the thread may renew the kernel's lease.
    pub(super) fn publish_gate(&self) {
        let agreed = dvip_lease::Agreed {
            view: self.node.view_id(),
            epochs: self.node.agreed_epochs(),
        };
        self.heartbeat_agreed.send_if_modified(|old| {
            let changed = *old != agreed;
            if changed {
                *old = agreed;
            }
            changed
        });
        if let Some(leasing) = &self.leasing {
            leasing
                .gate
                .publish(self.node.may_answer(), leasing.lapses_read);
        }
    }

    /// A reload: the kernel guards the new configuration's addresses.
    pub(super) fn guard(&self, addresses: &[dvip_core::ManagedAddress]) {
        self.order(Order::Guard(KernelLease::guarding(addresses)));
    }

    /// nftables reported a table deleted, or lost its reports: dvipd's own tables that are
    /// really gone (not replaced, as a reload replaces them) are loaded again, the lease's
    /// by the heartbeat thread, the silence's at once.
    pub(super) async fn table_news(&mut self, news: TableNews) {
        let tables: Vec<&str> = match &news {
            TableNews::Deleted(name) => [crate::kernel_lease::TABLE, crate::silence::TABLE]
                .into_iter()
                .filter(|t| t == name)
                .collect(),
            TableNews::Lost => vec![crate::kernel_lease::TABLE, crate::silence::TABLE],
        };
        for table in tables {
            let ours = if table == crate::silence::TABLE {
                self.pre_plumbing.is_some()
            } else {
                self.leasing.is_some()
            };
            if !ours || crate::kernel_lease::exists(table) {
                continue;
            }
            self.metrics.error("nft_table");
            error!(
                table,
                "an nftables table of dvipd's was deleted from outside it (a firewall flushing \
                 the whole ruleset?): loading it again; keep it out of the firewall's flushes \
                 (docs/leases.md)"
            );
            if table == crate::silence::TABLE {
                self.silence_lost().await;
            } else {
                self.guard(&self.config.addresses.clone());
            }
        }
    }

    fn order(&self, order: Order) {
        if let Some(leasing) = &self.leasing {
            // The thread only ends with the process.
            let _ = leasing.orders.send(order);
        }
    }
}
