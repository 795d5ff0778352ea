//! A lab as its commands drive it: the state its file records, and the one runtime through
//! which the nodes' consoles are asked.
//!
//! Owns asking the nodes' dvipds (each answer with a deadline) and deciding when the lab has
//! settled. It must not change the lab (start, kill, rewrite): the other modules do that, on
//! `lab.state`.

use std::time::Duration;

use dvip_console::{Answer, Client, ConsoleError, Request, Status};
use dvip_netns::LabError;
use serde_json::Value;

use crate::state::LabState;

/// One lab: its state and its console runtime.
pub(crate) struct Lab {
    /// What the lab's file records: its size, its system, its processes.
    pub(crate) state: LabState,
    runtime: tokio::runtime::Runtime,
}

impl Lab {
    /// The lab `state` describes.
    pub(crate) fn new(state: LabState) -> Result<Self, LabError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| LabError(format!("tokio: {e}")))?;
        Ok(Self { state, runtime })
    }

    /// The lab called `name`, as its state file records it.
    pub(crate) fn load(name: &str) -> Result<Self, LabError> {
        Self::new(LabState::load(name)?)
    }

    /// Node `i`'s dvipd's answer to `request`, given `within`.
    pub(crate) fn call(
        &self,
        i: usize,
        request: &Request,
        within: Duration,
    ) -> Result<Answer, ConsoleError> {
        let client = Client::new(self.state.socket(i));
        self.runtime.block_on(client.call_within(request, within))
    }

    /// [`Lab::call`] with the answer as the JSON the console prints, and a refusal in words.
    pub(crate) fn ask(
        &self,
        i: usize,
        request: &Request,
        within: Duration,
    ) -> Result<Value, String> {
        self.call(i, request, within)
            .map(|answer| answer.to_json())
            .map_err(|e| e.message)
    }

    /// Node `i`'s reply to `show`, if its dvipd answers `within`.
    pub(crate) fn show(&self, i: usize, within: Duration) -> Option<Status> {
        match self.call(i, &Request::Show, within) {
            Ok(Answer::Status(status)) => Some(*status),
            _ => None,
        }
    }

    /// Every running dvipd reports a mature view of every running node and, with leases, a
    /// kernel that answers (keepalived: its own notion of settled).
    pub(crate) fn settled(&self) -> bool {
        if !self.state.system.runs_dvipd() {
            return crate::keepalived::settled(&self.state);
        }
        let running = crate::running(&self.state);
        let pre_plumb = self.state.timing.heartbeats.is_some_and(|h| h.pre_plumb);
        // With leases, a node whose kernel does not answer yet (held back after a restart
        // until its epoch settles) has not settled: a fault then is a second fault on top.
        // With pre-plumbing, neither has a node still readying for the plan it is in.
        running.iter().all(|&i| {
            self.show(i, Duration::from_secs(1)).is_some_and(|s| {
                s.view.mature
                    && s.view.members.len() == running.len()
                    && s.lease
                        .as_ref()
                        .is_none_or(|l| l.state == dvip_console::LeaseState::Answering)
                    && (!pre_plumb || readied_as_planned(&s))
            })
        })
    }

    /// Waits until the addresses are spread and every view has settled.
    pub(crate) fn wait_spread(&self) -> Result<Duration, LabError> {
        let within =
            Duration::from_secs(30) + Duration::from_millis(u64::from(self.state.addresses));
        crate::wait_for(
            "the addresses to spread over the nodes",
            within,
            &self.state,
            |s| crate::spread(s) && self.settled(),
        )
    }
}

/// Whether a node has plumbed ahead exactly the IPv4 addresses it would take were their
/// holders to fail now. When `show` computed no successor at all (past its budget, or one
/// node alone), there is nothing to compare and the readying counts as done.
fn readied_as_planned(s: &Status) -> bool {
    let here = Some(s.node.as_str());
    s.addresses.iter().all(|a| a.next_owner.is_none())
        || s.addresses.iter().all(|a| {
            let would_take = a.plan.address.is_ipv4() && a.next_owner.as_deref() == here;
            would_take == a.readied_here
        })
}
