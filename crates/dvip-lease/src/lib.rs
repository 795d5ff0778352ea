//! A failure detector of dvip's own, with ownership leases, as a pure state machine: the part
//! of the fast takeover (issue 22, docs/leases.md) that decides *when*, never *what*.
//!
//! Owns the heartbeats between daemons, the acknowledgements that renew an owner's lease, the
//! promises that end it, and the moment at which a member may take a silent owner's
//! addresses. It must not read a clock, touch a socket, or know addresses and plans: the
//! caller feeds it its own monotonic time, the views and the heartbeats received, sends the
//! [`Beat`]s it asks for, lets go of its addresses when [`Detector::lease`] says the lease is
//! gone, and looks up which addresses a [`Takeover`] gives it in the plan the takeover names.
//!
//! # The rules
//!
//! Every member sends every other a [`Beat`] every `interval`. Each beat carries its send time
//! on the sender's clock, and, for every member the sender still trusts, the latest send time
//! it has heard from that member (an *acknowledgement*).
//!
//! - **A lease.** An owner answers for its addresses only until `L` after the send time of
//!   the latest of its own beats that another member acknowledged, on its own clock:
//!   `L = T / (1 + drift)² - margin`, where `T` is `suspect_after`. Hearing from nobody, it
//!   lets go within `L` of its last acknowledged beat.
//! - **A promise.** A member that has heard nothing from a member for `T` on its own clock
//!   promises, once and for good (until the subject's epoch moves), never to acknowledge that
//!   member again, and says so in every beat. The detector says when a promise is due; the
//!   caller first records what the promise makes it defer, then makes it
//!   ([`Detector::promise`]) naming the plan it holds at that moment, so a promise never
//!   names a plan older than what the caller has already acted on.
//! - **A takeover.** When every other member of the view has promised about one member, with
//!   one plan between them, that member's lease is over, and its addresses may be taken as
//!   that plan says. Nothing else is waited for.
//!
//! Why that is safe: every acknowledgement the owner could count was given before its giver
//! promised, for a beat sent before the giver last heard it; the giver then waited `T` on its
//! clock. `L (1 + drift) ≤ T / (1 + drift)`, so by the time the last promise is made, every
//! lease the owner could have drawn from any acknowledgement has run out on the real clock,
//! with `margin` to spare for letting go. Promises are never withdrawn within an epoch, so no
//! later acknowledgement renews it. One plan among all promises means one successor per
//! address: two members cannot take one address on two different plans.
//!
//! A member's epoch moves only at agreed points (a takeover, or the end of a promise, delivered
//! in the bus's order), which clears the promises about it. The caller hands the detector its
//! agreed table's view and epochs whole after every input ([`Detector::set_agreed`]), so the
//! two never disagree for longer than one input. No takeover is reported within
//! `suspect_after` of a change of members, a paused detector suspects nobody until it has
//! listened again, and a promise that leads to no takeover, or whose subject speaks again, is
//! reported to be ended.

mod beat;
mod detector;
mod options;

pub use beat::{Ack, Beat, DecodeError, Promise};
pub use detector::{Agreed, Detector, Due, Lease, Takeover, Ticked};
pub use options::{
    Flaw, LeaseOptions, DRIFT_PPM_DEFAULT, INTERVAL_DEFAULT, MARGIN_DEFAULT, SUSPECT_AFTER_DEFAULT,
};
