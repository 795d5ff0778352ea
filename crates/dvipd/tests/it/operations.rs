//! Running under a supervisor: systemd's notifications and watchdog, and Prometheus metrics.

use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use dvip_netns::Netns;

use crate::{config, eventually, wait_for, Daemon, THREE, THREE_ADDRESSES};

/// Collects what dvipd tells systemd until `want` arrives; every datagram seen so far.
fn notified(socket: &UnixDatagram, seen: &mut Vec<String>, want: &str, daemon: &Daemon) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    while !seen.iter().any(|m| m.lines().any(|l| l == want)) {
        assert!(
            Instant::now() < deadline,
            "no {want} from dvipd; got {seen:?}\n{}",
            daemon.log()
        );
        if let Ok(n) = socket.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

pub(crate) fn scrape(ns: &Netns, port: u16) -> Result<String, String> {
    ns.run(|| {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))
            .map_err(|e| format!("metrics: {e}"))?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: dvipd\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut body = String::new();
        stream
            .read_to_string(&mut body)
            .map_err(|e| e.to_string())?;
        Ok(body)
    })
}

#[test]
fn dvipd_tells_systemd_it_is_ready_pets_the_watchdog_and_serves_metrics() {
    let ns = Netns::new("dvipd-o");
    ns.loopback_up();
    let conf = config(&ns, THREE);
    let notify_path = conf.with_extension("notify");
    let _ = std::fs::remove_file(&notify_path);
    let socket = UnixDatagram::bind(&notify_path).expect("a notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let port = 19469;
    let metrics_at = format!("127.0.0.1:{port}");
    let mut daemon = Daemon::start_with(
        &ns,
        &conf,
        &["--metrics", &metrics_at],
        &[
            ("NOTIFY_SOCKET", notify_path.to_str().expect("utf-8")),
            // 400 ms: dvipd pets it every 200 ms.
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut seen = Vec::new();
    notified(&socket, &mut seen, "READY=1", &daemon);
    assert!(
        seen.iter()
            .any(|m| m.contains("STATUS=holding 3 of 3 addresses, view of 1")),
        "{seen:?}"
    );
    wait_for(&ns, &THREE_ADDRESSES, Duration::from_secs(5), &daemon);
    notified(&socket, &mut seen, "WATCHDOG=1", &daemon);

    eventually(Duration::from_secs(5), &daemon, || {
        let body = scrape(&ns, port)?;
        for line in [
            "HTTP/1.1 200 OK",
            "dvip_addresses_held 3",
            "dvip_addresses_configured 3",
            "dvip_view_members 1",
            "dvip_acquisitions_total 3",
            "dvip_bus_joined 1",
            "application/openmetrics-text",
            "dvip_address_owned{address=\"198.51.100.11\"} 1",
            "dvip_standby 0",
            "dvip_view_configurations 1",
            "dvip_view_planned_age_seconds ",
            "dvip_build_info{version=",
            "# EOF",
        ] {
            if !body.contains(line) {
                return Err(format!("{line:?} missing in\n{body}"));
            }
        }
        Ok(())
    });

    daemon.signal("HUP");
    notified(&socket, &mut seen, "RELOADING=1", &daemon);
    daemon.signal("TERM");
    notified(&socket, &mut seen, "STOPPING=1", &daemon);
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)), Some(0));
    let _ = std::fs::remove_file(&notify_path);
}

#[test]
fn the_shipped_unit_file_passes_systemd_s_own_check() {
    let unit = include_str!("../../../../packaging/dvipd.service");
    assert!(unit.contains("Type=notify") && unit.contains("WatchdogSec="));
    let dir = std::env::temp_dir().join(format!("dvipd-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let path = dir.join("dvipd.service");
    std::fs::write(
        &path,
        // dvip itself is another crate's binary: any executable stands in for it here.
        unit.replace("/usr/sbin/dvipd", env!("CARGO_BIN_EXE_dvipd"))
            .replace("/usr/sbin/dvip ", "/bin/true "),
    )
    .expect("unit written");
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", path.to_str().expect("utf-8")])
        .output()
        .expect("systemd-analyze (package systemd) runs");
    let _ = std::fs::remove_dir_all(&dir);
    let complaints = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !complaints.contains("dvipd.service"),
        "systemd-analyze verify: {complaints}"
    );
}
