//! The lease side of the world (docs/leases.md): each daemon's failure detector on a clock of
//! its own, heartbeats on a channel of their own (delayed, lost, cut one way), and each
//! kernel's end of the lease.
//!
//! Owns what the daemon's heartbeat thread and the kernel's nftables table would do, done in
//! memory: beats every interval, the verdicts handed to the node, and the kernel's deadline,
//! renewed only while the detector holds the lease and the node may answer. It must not judge
//! the outcome: the world checks that no two hosts answer for one address.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use dvip_core::Node;
use dvip_lease::{Agreed, Beat, Detector, Lease, LeaseOptions};

use crate::scenario::Dice;
use crate::world::{Happening, World};

/// How long the kernel answers after a renewal, as dvipd's nftables set times out.
pub(crate) const KERNEL_TIMEOUT: Duration = Duration::from_millis(12);
/// The most any host's clock runs fast or slow: two clocks then differ by at most twice this,
/// inside the detector's bound (1,000 ppm).
const DRIFT_PPM_MAX: u64 = 450;

/// One host's detector and kernel lease.
#[derive(Debug)]
pub(crate) struct HostLease {
    pub(crate) detector: Option<Detector>,
    /// How fast this host's clock runs, in parts per million off the true one.
    drift_ppm: i64,
    /// Until when the kernel answers for the host's addresses (the true clock).
    pub(crate) kernel_until: Duration,
}

/// Every host's leases and the beats in flight.
pub(crate) struct Leases {
    pub(crate) options: LeaseOptions,
    pub(crate) hosts: Vec<HostLease>,
    in_flight: BTreeMap<u64, (usize, Beat)>,
    next_beat: u64,
    /// Detectors started so far: each start's incarnation.
    started: u64,
    /// Chance that a beat is lost, now.
    pub(crate) loss: f64,
    /// `cut[from][to]`: beats from `from` never reach `to`.
    pub(crate) cut: Vec<Vec<bool>>,
    /// The channel's own dice, so the faults a seed injects stay the same.
    pub(crate) dice: Dice,
    /// A planted flaw: the lease is enforced by the daemon alone, so a host whose daemon is
    /// paused goes on answering.
    pub(crate) daemon_only: bool,
}

impl Leases {
    pub(crate) fn new(hosts: usize, mut dice: Dice) -> Self {
        let hosts = (0..hosts)
            .map(|_| HostLease {
                detector: None,
                drift_ppm: dice.between(0, 2 * DRIFT_PPM_MAX) as i64 - DRIFT_PPM_MAX as i64,
                kernel_until: Duration::ZERO,
            })
            .collect();
        Self {
            options: LeaseOptions::default(),
            hosts,
            in_flight: BTreeMap::new(),
            next_beat: 0,
            started: 0,
            loss: 0.0,
            cut: Vec::new(),
            dice,
            daemon_only: false,
        }
    }

    /// `now` on the host's own clock.
    pub(crate) fn local(&self, host: usize, now: Duration) -> Duration {
        let nanos = now.as_nanos() as i128;
        let skewed = nanos + nanos * i128::from(self.hosts[host].drift_ppm) / 1_000_000;
        Duration::from_nanos(skewed.max(0) as u64)
    }

    /// The true time at which the host's clock reads `local`.
    fn real(&self, host: usize, local: Duration) -> Duration {
        let nanos = local.as_nanos() as i128;
        let real = nanos * 1_000_000 / (1_000_000 + i128::from(self.hosts[host].drift_ppm));
        Duration::from_nanos(real.max(0) as u64)
    }

    /// Whether the host's kernel answers for what it has at `now`.
    pub(crate) fn answers(&self, host: usize, now: Duration) -> bool {
        now < self.hosts[host].kernel_until
    }

    /// Keeps a beat for delivery; its id.
    pub(crate) fn send(&mut self, to: usize, beat: Beat) -> u64 {
        self.next_beat += 1;
        self.in_flight.insert(self.next_beat, (to, beat));
        self.next_beat
    }

    pub(crate) fn arrive(&mut self, id: u64) -> Option<(usize, Beat)> {
        self.in_flight.remove(&id)
    }

    /// A delay for one beat: most arrive within a millisecond, some take a few.
    pub(crate) fn delay(&mut self) -> Duration {
        let micros = if self.dice.chance(0.05) {
            self.dice.between(1_000, 5_000)
        } else {
            self.dice.between(50, 1_000)
        };
        Duration::from_micros(micros)
    }

    /// Renews the host's kernel lease if its detector holds the lease with more than the
    /// kernel's timeout to run and its node may answer; whether it was renewed after having
    /// run out (the host starts answering again).
    pub(crate) fn renew(&mut self, host: usize, now: Duration, may_answer: bool) -> bool {
        let local = self.local(host, now);
        let Some(detector) = self.hosts[host].detector.as_ref() else {
            return false;
        };
        let long_enough = match detector.lease(local) {
            Lease::Held { until: None } => true,
            Lease::Held { until: Some(until) } => until > local + KERNEL_TIMEOUT,
            Lease::Lost => false,
        };
        if !(long_enough && may_answer) {
            return false;
        }
        let until = self.real(host, local + KERNEL_TIMEOUT);
        let lease = &mut self.hosts[host];
        let resumed = lease.kernel_until <= now;
        lease.kernel_until = lease.kernel_until.max(until);
        resumed
    }
}

impl World {
    /// Turns leases on: every daemon runs a detector from its next start, and beats begin.
    pub(crate) fn enable_leases(&mut self, leases: Leases) {
        let interval = leases.options.interval;
        self.leases = Some(leases);
        self.schedule(interval, Happening::Beats);
    }

    /// A new detector for a daemon that starts (none when leases are off).
    pub(crate) fn start_detector(&mut self, host: usize) {
        let now = self.now;
        let name = self.hosts[host].name.clone();
        if let Some(leases) = self.leases.as_mut() {
            let local = leases.local(host, now);
            leases.started += 1;
            let incarnation = leases.started;
            leases.hosts[host].detector =
                Some(Detector::new(name, leases.options, local, incarnation));
        }
    }

    /// The daemon is gone; with `power`, the host too, and its kernel answers nothing.
    pub(crate) fn stop_detector(&mut self, host: usize, power: bool) {
        if let Some(leases) = self.leases.as_mut() {
            leases.hosts[host].detector = None;
            if power {
                leases.hosts[host].kernel_until = Duration::ZERO;
            }
        }
    }

    /// Runs `f` on the host's detector with its own clock's `now`.
    pub(crate) fn with_detector(&mut self, host: usize, f: impl FnOnce(&mut Detector, Duration)) {
        let now = self.now;
        if let Some(leases) = self.leases.as_mut() {
            let local = leases.local(host, now);
            if let Some(detector) = leases.hosts[host].detector.as_mut() {
                f(detector, local);
            }
        }
    }

    /// Whether `host` answers for `address` now: plumbed, and (with leases) its kernel lease
    /// alive.
    pub(crate) fn answering(&self, host: usize, address: &IpAddr) -> bool {
        self.hosts[host].kernel.contains(address)
            && self.leases.as_ref().is_none_or(|l| {
                l.answers(host, self.now) || (l.daemon_only && self.hosts[host].paused)
            })
    }

    /// Every daemon beats, acts on what its detector decided, and renews its kernel lease.
    pub(crate) fn beats(&mut self) {
        for host in 0..self.hosts.len() {
            self.beat(host);
        }
        if let Some(interval) = self.leases.as_ref().map(|l| l.options.interval) {
            self.schedule(interval, Happening::Beats);
        }
    }

    fn beat(&mut self, host: usize) {
        let h = &self.hosts[host];
        if !h.powered || h.paused || h.node.is_none() {
            return;
        }
        let mut ticked = None;
        let mut lapsed = false;
        self.with_detector(host, |d, local| {
            ticked = Some(d.tick(local));
            lapsed = d.take_lapsed();
        });
        let Some(ticked) = ticked else {
            return;
        };
        // As dvipd: the node records what a promise defers, then the detector makes it on the
        // plan the node holds.
        for due in &ticked.due {
            let mut plan = None;
            self.with_node(host, |n| {
                n.handle_promised(&due.about, due.epoch, n.lease_plan());
                plan = Some(n.lease_plan());
            });
            self.record_event(&format!(
                "promise {host} about {} in {}",
                due.about, due.epoch
            ));
            if let Some(plan) = plan {
                self.with_detector(host, |d, local| {
                    d.promise(&due.about, due.epoch, plan, local);
                });
            }
        }
        let mut out = None;
        self.with_detector(host, |d, local| {
            out = Some((d.beat(local), d.members().clone()));
        });
        let Some((beat, members)) = out else {
            return;
        };
        for to in (0..self.hosts.len()).filter(|&o| o != host) {
            if !members.contains(&self.hosts[to].name) || !self.links[host][to] {
                continue;
            }
            let Some(leases) = self.leases.as_mut() else {
                return;
            };
            let cut = leases.cut.get(host).and_then(|c| c.get(to)) == Some(&true);
            let loss = leases.loss;
            if cut || leases.dice.chance(loss) {
                continue;
            }
            let delay = leases.delay();
            let id = leases.send(to, beat.clone());
            self.schedule(delay, Happening::BeatArrives { id });
        }
        if lapsed {
            self.stats.lapses += 1;
            self.record_event(&format!("lease lapsed {host}"));
            self.with_node(host, Node::handle_lease_lapsed);
        }
        for t in ticked.takeovers {
            let mut result = None;
            self.with_node(host, |n| {
                result = Some(n.handle_takeover(&t.about, t.epoch, t.plan));
            });
            self.record_event(&format!("takeover {host} of {} {result:?}", t.about));
        }
        for p in ticked.to_end {
            self.record_event(&format!("end epoch {host} {} {}", p.about, p.epoch));
            self.with_node(host, |n| n.handle_end_epoch(&p.about, p.epoch));
        }
        self.renew(host);
    }

    /// Renews the host's kernel lease if it may; a host that starts answering again must not
    /// answer for what another member of its view answers for.
    fn renew(&mut self, host: usize) {
        let now = self.now;
        let may_answer = self.hosts[host].node.as_ref().is_some_and(Node::may_answer);
        let resumed = self
            .leases
            .as_mut()
            .is_some_and(|l| l.renew(host, now, may_answer));
        if resumed {
            for address in self.hosts[host].kernel.clone() {
                self.check_resumed(host, address);
            }
        }
    }

    /// `host` answers for `address` again, after its kernel lease ran out: no member of its
    /// view may have plumbed it since `host` did, in a view `host` was in (a taker). Two
    /// sides of a healed partition that both kept it are the election's to settle, and two
    /// sides of a partition each serve their own, as without leases.
    fn check_resumed(&mut self, host: usize, address: IpAddr) {
        let mine = self.plumbed_in.get(&(host, address)).map(|(_, at)| *at);
        let taker = (0..self.hosts.len()).find(|&o| {
            o != host
                && self.answering(o, &address)
                && self.hosts[o].view.is_some()
                && self.hosts[o].view == self.hosts[host].view
                && self
                    .plumbed_in
                    .get(&(o, address))
                    .is_some_and(|(view, at)| {
                        mine.is_none_or(|mine| mine <= *at)
                            && self.history.get(view).is_some_and(|m| m.contains(&host))
                    })
        });
        if let Some(other) = taker {
            let (me, them) = (&self.hosts[host].name, &self.hosts[other].name);
            let what = format!(
                "{me} answers again for {address}, which {them} took while {me} was in its view"
            );
            self.violation(what);
        }
    }

    /// A beat arrives, unless its receiver is gone or asleep (a real socket would keep it;
    /// a late beat is older news than the detector has, which it handles the same way).
    pub(crate) fn beat_arrives(&mut self, id: u64) {
        let Some((to, beat)) = self.leases.as_mut().and_then(|l| l.arrive(id)) else {
            return;
        };
        let h = &self.hosts[to];
        if !h.powered || h.paused {
            return;
        }
        self.with_detector(to, |d, local| d.receive(&beat, local));
    }

    /// What each host's lease looks like now, for a verbose run's end.
    pub(crate) fn describe_leases(&self) -> Vec<String> {
        let Some(leases) = &self.leases else {
            return Vec::new();
        };
        (0..self.hosts.len())
            .map(|h| {
                let local = leases.local(h, self.now);
                let lease = leases.hosts[h].detector.as_ref().map(|d| {
                    let acks: Vec<String> = d
                        .clone()
                        .beat(local)
                        .acks
                        .into_iter()
                        .map(|a| a.to)
                        .collect();
                    (
                        d.lease(local),
                        d.epoch(),
                        d.promised().map(|p| p.about.clone()).collect::<Vec<_>>(),
                        acks,
                    )
                });
                let node = self.hosts[h]
                    .node
                    .as_ref()
                    .map(|n| (n.may_answer(), n.silent()));
                format!(
                    "{}: lease {lease:?}, node (may answer, silent) {node:?}, kernel until {:?}",
                    self.hosts[h].name, leases.hosts[h].kernel_until
                )
            })
            .collect()
    }

    /// What the node's agreed table says now, whole, for its detector (as dvipd hands it to
    /// its heartbeat thread after every input).
    pub(crate) fn tell_detector(&mut self, host: usize) {
        let Some(agreed) = self.hosts[host].node.as_ref().map(|n| Agreed {
            view: n.view_id(),
            epochs: n.agreed_epochs(),
        }) else {
            return;
        };
        self.with_detector(host, |d, local| d.set_agreed(&agreed, local));
    }
}
