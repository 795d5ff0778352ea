//! Ctrl-C (or SIGTERM) during a long lab command (`bench`, `chaos`, `steady`): the first asks
//! the command to stop where what it measured can still be reported and its lab removed; a
//! second ends the process at once, leaving the lab for `dvip lab down`.
//!
//! Owns the process's SIGINT and SIGTERM handling once [`arm`] ran. It must not decide what
//! stopping means for a command: each asks [`requested`] at points of its own.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::signal::unix::{signal, SignalKind};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// From now on, SIGINT and SIGTERM ask the command to stop instead of ending the process;
/// `lab` names the lab in what the signals print, `stops` where the command will stop.
pub(crate) fn arm(lab: &str, stops: &'static str) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Registered before this returns, so no signal falls between arming and listening.
    let (mut interrupt, mut terminate) = {
        let _inside = runtime.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        )
    };
    let lab = lab.to_owned();
    std::thread::spawn(move || {
        runtime.block_on(async move {
            loop {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
                if REQUESTED.swap(true, Ordering::SeqCst) {
                    eprintln!(
                        "dvip lab: stopped at once; `dvip lab --name {lab} down` removes what is left"
                    );
                    std::process::exit(130);
                }
                eprintln!("dvip lab: stopping {stops}; once more to stop at once");
            }
        });
    });
    Ok(())
}

/// Whether a signal asked the command to stop.
pub(crate) fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
