//! Listeners dvipd serves itself (forward mode, PROXY protocol v2) and the operator's hook,
//! seen from a client on the link.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use dvip_netns::Netns;

use crate::{call, config, eventually, Daemon};

/// A backend on the node's loopback that reads a PROXY v2 header and answers every line with
/// `CLIENT-ADDRESS LINE`.
fn backend(ns: &Netns) -> SocketAddr {
    ns.loopback_up();
    let listener = ns.run(|| TcpListener::bind("127.0.0.1:2525").expect("backend binds"));
    let at = listener.local_addr().expect("bound");
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || serve(stream));
        }
    });
    at
}

fn serve(mut stream: TcpStream) {
    let mut header = [0u8; 28];
    if stream.read_exact(&mut header).is_err() {
        return;
    }
    let Some((client, _, _)) = dvipd::proxy_header::decode(&header) else {
        let _ = stream.write_all(b"no PROXY header\n");
        return;
    };
    let mut write = stream.try_clone().expect("clone");
    for line in BufReader::new(stream).lines().map_while(Result::ok) {
        if write
            .write_all(format!("{} {line}\n", client.ip()).as_bytes())
            .is_err()
        {
            return;
        }
    }
}

/// Waits until `dv0` carries exactly `want` besides the node's own 198.51.100.1.
fn wait_vips(ns: &Netns, want: &[&str], daemon: &Daemon) {
    eventually(Duration::from_secs(5), daemon, || {
        let mut have = ns.address_list();
        have.retain(|a| a != "198.51.100.1");
        (have == want)
            .then_some(())
            .ok_or(format!("wanted {want:?}, have {have:?}"))
    });
}

fn listening(ns: &Netns) -> String {
    let out = ns.command("ss").args(["-Hltn"]).output().expect("ss runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_forward_mode_listener_answers_the_client_while_the_node_owns_its_address() {
    let ns = Netns::with_client("dvipd-f");
    // The node's own address on the link: without one, the kernel drops the link's routes
    // when the last DuraVIP address leaves, and the node could not answer the client again.
    ns.ip(&["addr", "add", "198.51.100.1/24", "dev", "dv0"]);
    backend(&ns);
    let dir = std::env::temp_dir();
    let hook = dir.join(format!("{}-hook.sh", ns.name()));
    let record = dir.join(format!("{}-hook.out", ns.name()));
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$1 $2 event=$DVIP_EVENT ports=$DVIP_PORTS bindings=$DVIP_BINDINGS node=$DVIP_NODE\" >> {}\n",
            record.display()
        ),
    )
    .expect("hook written");
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("hook executable");
    let conf = config(
        &ns,
        &format!(
            r#"
cluster {{ nodename = solo  duravip_hook = "{}"  Topology "198.51.100.0/24" {{ interface = "dv0" }} }}
Binding "a" {{ Enable_Duravip = true  Bind_Address = 198.51.100.11 }}
ESMTP_Listener {{
  Listen "198.51.100.11:25" {{ Duravip_Forward = "127.0.0.1:2525"  Duravip_Proxy_Protocol = true }}
}}
"#,
            hook.display()
        ),
    );
    let socket = conf.with_extension("sock");
    let daemon = Daemon::start(&ns, &conf);
    wait_vips(&ns, &["198.51.100.11"], &daemon);

    let vip: SocketAddr = "198.51.100.11:25".parse().expect("address");
    let mut client = None;
    eventually(Duration::from_secs(5), &daemon, || {
        let stream = ns
            .run_in_client(|| TcpStream::connect_timeout(&vip, Duration::from_millis(500)))
            .map_err(|e| format!("the client cannot connect to {vip}: {e}"))?;
        client = Some(stream);
        Ok(())
    });
    let stream = client.expect("connected");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    (&stream).write_all(b"HELO client\n").expect("send");
    let mut answer = String::new();
    reader.read_line(&mut answer).expect("the backend answers");
    assert_eq!(
        answer, "198.51.100.200 HELO client\n",
        "the backend sees the client's address through the PROXY header"
    );

    eventually(Duration::from_secs(5), &daemon, || {
        let hooks = std::fs::read_to_string(&record).unwrap_or_default();
        if hooks.contains("acquire 198.51.100.11 event=acquire ports=25 bindings=a node=solo") {
            Ok(())
        } else {
            Err(format!("hook output so far: {hooks:?}"))
        }
    });

    assert_eq!(
        call(&socket, &serde_json::json!({"command": "standby"}))["ok"],
        true
    );
    wait_vips(&ns, &[], &daemon);
    eventually(Duration::from_secs(5), &daemon, || {
        let sockets = listening(&ns);
        if sockets.contains("198.51.100.11:25") {
            Err(format!("still listening after the release: {sockets}"))
        } else {
            Ok(())
        }
    });
    eventually(Duration::from_secs(5), &daemon, || {
        let hooks = std::fs::read_to_string(&record).unwrap_or_default();
        if hooks.contains("release 198.51.100.11 event=release") {
            Ok(())
        } else {
            Err(format!("hook output so far: {hooks:?}"))
        }
    });

    assert_eq!(
        call(&socket, &serde_json::json!({"command": "online"}))["ok"],
        true
    );
    eventually(Duration::from_secs(5), &daemon, || {
        let stream = ns
            .run_in_client(|| TcpStream::connect_timeout(&vip, Duration::from_millis(500)))
            .map_err(|e| format!("the client cannot connect again: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        (&stream).write_all(b"again\n").map_err(|e| e.to_string())?;
        let mut answer = String::new();
        BufReader::new(&stream)
            .read_line(&mut answer)
            .map_err(|e| e.to_string())?;
        (answer == "198.51.100.200 again\n")
            .then_some(())
            .ok_or(format!("answered {answer:?}"))
    });
    for path in [hook, record] {
        let _ = std::fs::remove_file(path);
    }
}
