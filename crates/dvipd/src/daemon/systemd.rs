//! systemd's notification protocol: ready, reloading, stopping, the watchdog, and a one-line
//! status for `systemctl status`.
//!
//! Owns the messages sent to `NOTIFY_SOCKET`. Without systemd (no `NOTIFY_SOCKET`) every call
//! does nothing. It must not decide when the daemon is ready; the loop says so.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::debug;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        debug!("cannot notify systemd: {e}");
    }
}

/// The first plan is carried out and the console answers.
pub(super) fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A new one-line status.
pub(super) fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// SIGHUP arrived; `ready` follows when the new configuration is in (or refused).
pub(super) fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Handing addresses over before exiting.
pub(super) fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// How often to tell the watchdog the loop is alive, when systemd runs one: half its period.
pub(super) fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|period| period / 2)
}

/// The loop is alive.
pub(super) fn watchdog() {
    send(&[NotifyState::Watchdog]);
}
