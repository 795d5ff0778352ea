//! dvipd under a tight limit on open files: forward-mode relays stop at their cap (what is over
//! it is closed at once), and a console flooded past the limit backs off and answers again.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::Duration;

use dvip_netns::Netns;

use crate::{call, config, eventually, Daemon};

/// The limit dvipd runs under: room for 32 relays (each takes two descriptors, and 256 are
/// kept for the rest).
const NOFILE: &str = "--nofile=320:320";
const RELAYS: usize = 32;

/// dvipd on the standalone bus under [`NOFILE`].
fn start_limited(ns: &Netns, conf: &std::path::Path) -> Daemon {
    let log = conf.with_extension("log");
    let file = std::fs::File::create(&log).expect("log file");
    let child = ns
        .command("prlimit")
        .args([NOFILE, "--", env!("CARGO_BIN_EXE_dvipd")])
        .args(["--config", conf.to_str().expect("utf-8 path")])
        .args(["--bus", "standalone", "--address-lifetime", "2"])
        .args([
            "--socket",
            conf.with_extension("sock").to_str().expect("utf-8 path"),
        ])
        .args([
            "--state-dir",
            conf.with_extension("state").to_str().expect("utf-8 path"),
        ])
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("dvipd starts");
    Daemon { child, log }
}

/// A backend on the node's loopback that says nothing and closes when its client does.
fn silent_backend(ns: &Netns) {
    ns.loopback_up();
    let listener = ns.run(|| TcpListener::bind("127.0.0.1:2526").expect("backend binds"));
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut stream, &mut std::io::sink());
            });
        }
    });
}

#[test]
fn relays_stop_at_their_cap_and_the_console_still_answers() {
    let ns = Netns::with_client("dvipd-n");
    ns.ip(&["addr", "add", "198.51.100.1/24", "dev", "dv0"]);
    silent_backend(&ns);
    let conf = config(
        &ns,
        r#"
cluster { nodename = solo  Topology "198.51.100.0/24" { interface = "dv0" } }
Binding "a" { Enable_Duravip = true  Bind_Address = 198.51.100.11 }
ESMTP_Listener {
  Listen "198.51.100.11:25" { Duravip_Forward = "127.0.0.1:2526" }
}
"#,
    );
    let socket = conf.with_extension("sock");
    let daemon = start_limited(&ns, &conf);
    let vip: SocketAddr = "198.51.100.11:25".parse().expect("address");
    let mut clients = Vec::new();
    eventually(Duration::from_secs(5), &daemon, || {
        let stream = ns
            .run_in_client(|| TcpStream::connect_timeout(&vip, Duration::from_millis(500)))
            .map_err(|e| format!("the client cannot connect to {vip}: {e}"))?;
        clients.push(stream);
        Ok(())
    });
    // Three times the cap, all idle.
    for _ in 1..3 * RELAYS {
        let stream = ns
            .run_in_client(|| TcpStream::connect_timeout(&vip, Duration::from_millis(500)))
            .expect("the kernel accepts into the backlog");
        clients.push(stream);
    }
    // The console answers while the relays are full.
    let shown = call(&socket, &serde_json::json!({"command": "show"}));
    assert_eq!(shown["ok"], true, "{shown}\n{}", daemon.log());
    // Those over the cap were closed at once: they read end-of-file; the others stay open.
    let mut closed = 0;
    for stream in &mut clients {
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let mut byte = [0u8; 1];
        if matches!(stream.read(&mut byte), Ok(0)) {
            closed += 1;
        }
    }
    assert_eq!(
        closed,
        clients.len() - RELAYS,
        "exactly the connections over the cap of {RELAYS} are closed\n{}",
        daemon.log()
    );
    // Once clients go, relays are free again.
    clients.clear();
    eventually(Duration::from_secs(5), &daemon, || {
        let mut stream = ns
            .run_in_client(|| TcpStream::connect_timeout(&vip, Duration::from_millis(500)))
            .map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .map_err(|e| e.to_string())?;
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Ok(0) => Err("still refused".to_owned()),
            _ => Ok(()),
        }
    });
}

#[test]
fn a_console_flooded_past_the_descriptor_limit_answers_again_once_the_flood_ends() {
    let ns = Netns::new("dvipd-e");
    let conf = config(
        &ns,
        r#"cluster { nodename = solo  Topology "198.51.100.0/24" { interface = "dv0" } }"#,
    );
    let socket = conf.with_extension("sock");
    let daemon = start_limited(&ns, &conf);
    eventually(Duration::from_secs(5), &daemon, || {
        UnixStream::connect(&socket)
            .map(drop)
            .map_err(|e| e.to_string())
    });
    // More connections than dvipd has descriptors: it runs out and its accepts fail.
    let flood: Vec<UnixStream> = (0..400)
        .filter_map(|_| UnixStream::connect(&socket).ok())
        .collect();
    assert!(flood.len() >= 300, "only {} connected", flood.len());
    eventually(Duration::from_secs(10), &daemon, || {
        daemon
            .log()
            .contains("cannot accept console connections")
            .then_some(())
            .ok_or_else(|| "no accept failure yet".to_owned())
    });
    drop(flood);
    let shown = call(&socket, &serde_json::json!({"command": "show"}));
    assert_eq!(shown["ok"], true, "{shown}\n{}", daemon.log());
}
