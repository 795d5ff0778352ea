//! The log service of a running dvipd, spoken to as an aggregator would: over mutual TLS on
//! loopback inside the test's namespace, with certificates `dvip_tls` made.

use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dvip_journal::{CreateOptions, Journal, Reader, RecordId, Writer};
use dvip_logwire::{ErrorKind, Framed, Reply, Request, WireRecord, PROTOCOL_VERSION};
use dvip_netns::Netns;
use dvip_tls::rustls::{ClientConfig, ClientConnection, StreamOwned};
use dvip_tls::{server_name, TlsDir};

use crate::{wait_for, Daemon};

const PORT: u16 = 14802;

type Client = Framed<StreamOwned<ClientConnection, TcpStream>>;

/// Connects as `tls` would, retrying while dvipd is not listening yet.
fn connect(tls: ClientConfig) -> Result<Client, String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let tcp = loop {
        match TcpStream::connect(("127.0.0.1", PORT)) {
            Ok(tcp) => break tcp,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("cannot connect: {e}")),
        }
    };
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let connection = ClientConnection::new(Arc::new(tls), server_name("solo").expect("name"))
        .map_err(|e| e.to_string())?;
    Ok(Framed::new(StreamOwned::new(connection, tcp)))
}

fn ask(client: &mut Client, request: &Request) -> Result<Reply, String> {
    client.send(request).map_err(|e| e.to_string())?;
    client
        .receive::<Reply>()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no reply within 5 s".to_owned())
}

/// Receives records until `count` have come.
fn records(client: &mut Client, count: usize) -> Vec<WireRecord> {
    let mut all = Vec::new();
    while all.len() < count {
        match client.receive::<Reply>().expect("the connection holds") {
            Some(Reply::Records { records }) => all.extend(records),
            other => panic!("wanted records, got {other:?} after {}", all.len()),
        }
    }
    all
}

fn hello(client: &mut Client) {
    let welcome = ask(
        client,
        &Request::Hello {
            version: PROTOCOL_VERSION,
            client: "collector".into(),
        },
    )
    .expect("a welcome");
    assert_eq!(
        welcome,
        Reply::Welcome {
            version: PROTOCOL_VERSION,
            node: "solo".into()
        }
    );
}

/// A CA in `dir/tls` with the node's (`solo`) certificate and, if asked, the aggregator's.
fn certificates(dir: &Path, collector: bool) -> TlsDir {
    let tls = TlsDir::new(dir.join("tls"));
    tls.init("test", 1, false).expect("a CA");
    tls.issue("solo", &[], 1).expect("the node's");
    if collector {
        tls.issue("collector", &[], 1).expect("the aggregator's");
    }
    tls
}

/// A journal at `path` with the subscriber `master`, and its writer.
fn journal_with_master(path: &Path) -> Writer {
    let options = CreateOptions {
        subscribers: vec!["master".into()],
        ..CreateOptions::default()
    };
    Writer::new(
        Journal::open_or_create(path, &options).expect("journal"),
        dvip_journal::Durability::Process,
    )
}

fn config(journal: &Path) -> String {
    format!(
        r#"
ESMTP_Listener {{ Listen "198.51.100.31:25" {{ Enable_Duravip = true }} }}
cluster {{
  nodename = solo
  cluster_listener = "127.0.0.1:{PORT}"
  logs = [ maillog = "{}" ]
  Topology "198.51.100.0/24" {{ interface = "dv0" }}
}}
"#,
        journal.display()
    )
}

#[test]
fn an_aggregator_replays_from_its_checkpoint_with_credit_and_acks_move_it() {
    let ns = Netns::new("dvipd-ls");
    ns.loopback_up();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let tls = certificates(tmp.path(), true);
    let journal = tmp.path().join("mail.cluster");
    let mut writer = journal_with_master(&journal);
    let lines: Vec<String> = (0..1000).map(|i| format!("line {i}")).collect();
    for line in &lines {
        writer.append(line.as_bytes()).expect("append");
    }
    let conf = crate::config(&ns, &config(&journal));
    let tls_dir = tls.path().to_str().expect("utf-8").to_owned();
    let daemon = Daemon::start_with(&ns, &conf, &["--tls-dir", &tls_dir], &[]);
    wait_for(&ns, &["198.51.100.31"], Duration::from_secs(5), &daemon);

    let collector = tls.client_config("collector").expect("client");
    let acked = ns.run(|| {
        let mut c = connect(collector.clone()).expect("connected");
        hello(&mut c);
        let logs = ask(&mut c, &Request::List).expect("logs");
        assert!(
            matches!(&logs, Reply::Logs { logs } if logs.len() == 1 && logs[0].name == "maillog" && logs[0].subscribers == ["master"]),
            "{logs:?}"
        );
        let open = |log: &str, subscriber: &str, credit| Request::Open {
            log: log.into(),
            subscriber: subscriber.into(),
            credit,
        };
        for (request, kind) in [
            (open("nolog", "master", 10), ErrorKind::UnknownLog),
            (open("maillog", "nobody", 10), ErrorKind::UnknownSubscriber),
        ] {
            let reply = ask(&mut c, &request).expect("a reply");
            assert!(matches!(&reply, Reply::Error { kind: k, .. } if *k == kind), "{reply:?}");
        }
        let opened = ask(&mut c, &open("maillog", "master", 100)).expect("opened");
        assert_eq!(
            opened,
            Reply::Opened {
                log: "maillog".into(),
                checkpoint: RecordId::START
            }
        );
        let first = records(&mut c, 100);
        assert_eq!(first.len(), 100, "no more than the credit");
        // Backpressure: with no credit left, nothing more comes.
        c.get_mut()
            .sock
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        assert!(matches!(c.receive::<Reply>(), Ok(None)), "sent past the credit");
        c.get_mut()
            .sock
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        c.send(&Request::More { records: 900 }).expect("more");
        let rest = records(&mut c, 900);
        let all: Vec<String> = first
            .iter()
            .chain(&rest)
            .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
            .collect();
        assert_eq!(all, lines, "every record once, in order");
        let past = RecordId {
            segment: rest[899].id.segment,
            position: rest[899].id.position + 1,
        };
        let reply = ask(&mut c, &Request::Ack { through: past }).expect("a reply");
        assert!(matches!(reply, Reply::Error { kind: ErrorKind::BadAck, .. }), "{reply:?}");
        let through = rest[399].id;
        assert_eq!(
            ask(&mut c, &Request::Ack { through }).expect("acked"),
            Reply::Acked { through }
        );
        through
    });
    let reader = Reader::open(Journal::open(&journal).expect("journal"), "master").expect("reader");
    assert_eq!(reader.cursor(), acked, "the checkpoint on disk moved");

    // A new connection resumes after the checkpoint.
    ns.run(|| {
        let mut c = connect(collector.clone()).expect("connected");
        hello(&mut c);
        let opened = ask(
            &mut c,
            &Request::Open {
                log: "maillog".into(),
                subscriber: "master".into(),
                credit: 1000,
            },
        )
        .expect("opened");
        assert_eq!(
            opened,
            Reply::Opened {
                log: "maillog".into(),
                checkpoint: acked
            }
        );
        let again = records(&mut c, 500);
        assert_eq!(again[0].payload, b"line 500");
        assert_eq!(again[499].payload, b"line 999");
    });
    drop(daemon);
}

#[test]
fn a_client_without_the_cluster_s_certificate_gets_nothing() {
    let ns = Netns::new("dvipd-lt");
    ns.loopback_up();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let tls = certificates(tmp.path(), false);
    let stranger = TlsDir::new(tmp.path().join("other"));
    stranger.init("other", 1, false).expect("another CA");
    stranger.issue("collector", &[], 1).expect("a stranger");
    // The stranger trusts the node's CA, so only its own certificate is at fault.
    std::fs::copy(tls.path().join("ca.pem"), stranger.path().join("ca.pem")).expect("copy");
    let journal = tmp.path().join("mail.cluster");
    journal_with_master(&journal)
        .append(b"secret delivery line")
        .expect("append");
    let conf = crate::config(&ns, &config(&journal));
    let tls_dir = tls.path().to_str().expect("utf-8").to_owned();
    let daemon = Daemon::start_with(&ns, &conf, &["--tls-dir", &tls_dir], &[]);
    wait_for(&ns, &["198.51.100.31"], Duration::from_secs(5), &daemon);
    let client = stranger.client_config("collector").expect("client");
    ns.run(|| {
        let mut c = connect(client).expect("TCP connects");
        let outcome = ask(
            &mut c,
            &Request::Hello {
                version: PROTOCOL_VERSION,
                client: "stranger".into(),
            },
        );
        assert!(outcome.is_err(), "a stranger was answered: {outcome:?}");
    });
}

#[test]
fn without_its_certificate_the_node_runs_and_says_the_log_service_is_not_started() {
    let ns = Netns::new("dvipd-lc");
    ns.loopback_up();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let conf = crate::config(&ns, &config(&tmp.path().join("mail.cluster")));
    let empty = tmp.path().join("no-tls");
    let daemon = Daemon::start_with(
        &ns,
        &conf,
        &["--tls-dir", empty.to_str().expect("utf-8")],
        &[],
    );
    wait_for(&ns, &["198.51.100.31"], Duration::from_secs(5), &daemon);
    crate::wait_logged(&daemon, "the log service is not started");
}

#[test]
fn an_aggregator_that_stops_reading_is_dropped_and_frees_its_thread() {
    let ns = Netns::new("dvipd-lw");
    ns.loopback_up();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let tls = certificates(tmp.path(), true);
    let journal = tmp.path().join("mail.cluster");
    let mut writer = journal_with_master(&journal);
    // Far more than the sockets' buffers hold, so the node's writes must wait on the reader.
    let line = vec![b'x'; 1000];
    for _ in 0..40 {
        writer
            .append_batch(
                dvip_journal::Timestamp::from_system(std::time::SystemTime::now()),
                std::iter::repeat_n(line.as_slice(), 1000),
            )
            .expect("append");
    }
    let conf = crate::config(&ns, &config(&journal));
    let tls_dir = tls.path().to_str().expect("utf-8").to_owned();
    let daemon = Daemon::start_with(
        &ns,
        &conf,
        &["--tls-dir", &tls_dir, "--metrics", "127.0.0.1:19473"],
        &[],
    );
    wait_for(&ns, &["198.51.100.31"], Duration::from_secs(5), &daemon);
    let collector = tls.client_config("collector").expect("client");
    let connections = |want: &str| {
        crate::eventually(Duration::from_secs(60), &daemon, || {
            let body = crate::operations::scrape(&ns, 19473)?;
            let line = format!("dvip_log_service_connections {want}");
            if body.contains(&line) {
                Ok(())
            } else {
                Err(format!("{line:?} missing"))
            }
        });
    };
    // The stalled client is held open (not closed) for the whole test.
    let _stalled = ns.run(|| {
        let mut c = connect(collector).expect("connected");
        hello(&mut c);
        c.send(&Request::Open {
            log: "maillog".into(),
            subscriber: "master".into(),
            credit: 1_000_000,
        })
        .expect("open");
        c
    });
    connections("1");
    // It reads nothing: within the write timeout the node gives up on it.
    connections("0");
}
