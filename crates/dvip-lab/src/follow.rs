//! Following a node's event stream (`dvip events`) from a thread of its own, for reports
//! that line the daemons' events up with what the client saw.
//!
//! Owns the thread and the lines gathered. It must not interpret them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// How long `start` waits for a running daemon to open its stream.
const OPEN_WAIT: Duration = Duration::from_secs(2);

/// How often a reconnecting follower tries a daemon that is not (or no longer) there.
const RETRY: Duration = Duration::from_millis(20);

/// Follows one node's event stream on a thread of its own until told to stop.
pub(crate) struct Follower {
    /// The daemon accepted the request: the stream is open.
    pub(crate) following: bool,
    opened: Arc<AtomicBool>,
    lines: Arc<Mutex<Vec<Value>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Follower {
    /// Follows the daemon at `socket`, which is running: returns once its stream is open (or
    /// after two seconds, `following` false) and ends when that daemon does.
    pub(crate) fn start(socket: PathBuf) -> Self {
        let mut follower = Self::spawn(socket, false);
        follower.following = follower.wait_open(OPEN_WAIT);
        follower
    }

    /// Follows whichever daemon answers at `socket` until told to stop: one that is not
    /// there yet, and each one started after the last went away (a node restarted while
    /// followed), so that what a new daemon does first is seen too. With `running`, waits
    /// as `start` does for the daemon there now.
    pub(crate) fn reconnecting(socket: PathBuf, running: bool) -> Self {
        let mut follower = Self::spawn(socket, true);
        follower.following = running && follower.wait_open(OPEN_WAIT);
        follower
    }

    fn spawn(socket: PathBuf, reconnect: bool) -> Self {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let opened = Arc::new(AtomicBool::new(false));
        let (sink, open) = (Arc::clone(&lines), Arc::clone(&opened));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                loop {
                    let client = dvip_console::Client::new(&socket);
                    let follow = client.follow_with(
                        || open.store(true, Ordering::SeqCst),
                        |line| {
                            if let (Ok(value), Ok(mut all)) =
                                (serde_json::to_value(&line), sink.lock())
                            {
                                all.push(value);
                            }
                        },
                    );
                    tokio::select! {
                        _ = follow => {}
                        _ = &mut stopped => return,
                    }
                    if !reconnect {
                        return;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(RETRY) => {}
                        _ = &mut stopped => return,
                    }
                }
            });
        });
        Self {
            following: false,
            opened,
            lines,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Whether the stream opened within `within`; a plain follower whose daemon is not
    /// there gives up at once.
    fn wait_open(&self, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        loop {
            if self.opened.load(Ordering::SeqCst) {
                return true;
            }
            let ended = self
                .thread
                .as_ref()
                .is_none_or(std::thread::JoinHandle::is_finished);
            if ended || std::time::Instant::now() >= deadline {
                return self.opened.load(Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Whether any daemon opened its stream to this follower, so far.
    pub(crate) fn ever_opened(&self) -> bool {
        self.opened.load(Ordering::SeqCst)
    }

    pub(crate) fn finish(mut self) -> Vec<Value> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;
    use std::time::Instant;

    /// Plays one daemon at `socket`: waits up to `within` for a follower, answers its request
    /// with `ok` and one acquisition of `address`, then goes away. False if nobody came.
    fn serve_once(socket: &std::path::Path, address: &str, within: Duration) -> bool {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let deadline = Instant::now() + within;
        let stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
                Err(_) => return false,
            }
        };
        stream.set_nonblocking(false).expect("blocking");
        let mut request = String::new();
        BufReader::new(&stream)
            .read_line(&mut request)
            .expect("request");
        assert!(request.contains("events"), "asked for {request}");
        let mut stream = stream;
        writeln!(stream, "{{\"ok\":true}}").expect("ok");
        writeln!(
            stream,
            "{{\"event\":\"acquire\",\"address\":\"{address}\",\"at_ms\":1}}"
        )
        .expect("event");
        true
    }

    fn lines_within(follower: &Follower, count: usize, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let seen = follower.lines.lock().map(|l| l.len()).unwrap_or(0);
            if seen >= count || Instant::now() >= deadline {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dvip-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    #[test]
    fn a_reconnecting_follower_sees_a_daemon_started_later_and_the_one_after_it() {
        let dir = scratch("follow");
        let socket = dir.join("node.sock");
        let wait = Duration::from_secs(5);
        // Nothing is there yet: the node's daemon starts after the follower.
        let follower = Follower::reconnecting(socket.clone(), false);
        assert!(!follower.following && !follower.ever_opened());
        assert!(serve_once(&socket, "198.18.0.1", wait), "never came");
        assert_eq!(lines_within(&follower, 1, wait), 1);
        // That daemon is gone; the one that replaces it is followed too.
        assert!(serve_once(&socket, "198.18.0.2", wait), "did not come back");
        assert_eq!(lines_within(&follower, 2, wait), 2);
        assert!(follower.ever_opened());
        let lines = follower.finish();
        let addresses: Vec<&str> = lines.iter().filter_map(|l| l["address"].as_str()).collect();
        assert_eq!(addresses, ["198.18.0.1", "198.18.0.2"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_plain_follower_of_no_daemon_gives_up_at_once() {
        let dir = scratch("follow-none");
        let started = Instant::now();
        let follower = Follower::start(dir.join("nobody.sock"));
        assert!(!follower.following);
        assert!(started.elapsed() < OPEN_WAIT / 2, "{:?}", started.elapsed());
        assert!(follower.finish().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_plain_follower_ends_with_its_daemon() {
        let dir = scratch("follow-plain");
        let socket = dir.join("node.sock");
        let first = std::thread::spawn({
            let socket = socket.clone();
            move || serve_once(&socket, "198.18.0.1", Duration::from_secs(5))
        });
        // `start` waits for the stream to open, so the daemon must be listening first.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !socket.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let follower = Follower::start(socket.clone());
        assert!(first.join().expect("first daemon"));
        assert!(follower.following);
        assert_eq!(lines_within(&follower, 1, Duration::from_secs(5)), 1);
        // A second daemon at the same place is not followed.
        assert!(
            !serve_once(&socket, "198.18.0.2", Duration::from_millis(300)),
            "the plain follower came back"
        );
        assert_eq!(follower.finish().len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
