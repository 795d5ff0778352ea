//! The policy server's edge: Postfix's policy delegation protocol over TCP
//! (`check_policy_service inet:127.0.0.1:10031`), translated to and from the replication
//! core's verdicts.
//!
//! Owns the protocol: `name=value` lines ending with an empty line, one request after another
//! on a connection, each answered with `action=...` and an empty line; every line and request
//! bounded before it is kept. It must not decide (the daemon's loop asks the replica) nor
//! count anything itself.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use dvip_replicate::Verdict;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

/// The longest attribute line kept (Postfix's longest values, certificate names, fit).
const LINE_MAX: usize = 4096;

/// The most attributes one request may carry.
const ATTRIBUTES_MAX: usize = 128;

/// What the daemon is asked about one SMTP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyQuery {
    /// The client's address.
    pub client: IpAddr,
    /// The client's port (`client_port`): with the address, it tells one SMTP connection
    /// from the next.
    pub port: Option<u16>,
    /// The request is at the `CONNECT` stage.
    pub connect: bool,
}

/// How long a connection is remembered as counted: longer than any SMTP session.
const SESSION_MEMORY: Duration = Duration::from_secs(3600);

/// The most connections remembered at once; the oldest are forgotten first.
const SESSIONS_MAX: usize = 100_000;

/// The SMTP connections already counted. Postfix asks at every recipient (its
/// `smtpd_delay_reject` puts even the client restrictions there), each time with the
/// connection's address and port: the first request of a connection counts it, the others
/// are only checked.
#[derive(Debug, Default)]
pub struct Sessions {
    seen: HashMap<(IpAddr, u16), Duration>,
    order: VecDeque<((IpAddr, u16), Duration)>,
}

impl Sessions {
    /// Whether `query` is the first of its connection (and so counts), at `now`.
    pub fn first(&mut self, query: &PolicyQuery, now: Duration) -> bool {
        while let Some(&(key, at)) = self.order.front() {
            if now.saturating_sub(at) < SESSION_MEMORY && self.order.len() < SESSIONS_MAX {
                break;
            }
            self.order.pop_front();
            if self.seen.get(&key) == Some(&at) {
                self.seen.remove(&key);
            }
        }
        let Some(port) = query.port else {
            // Without a port, connections cannot be told apart: only a CONNECT counts.
            return query.connect;
        };
        let key = (query.client, port);
        // A CONNECT starts a connection even on a port seen before (a port is reused).
        if !query.connect && self.seen.contains_key(&key) {
            return false;
        }
        self.seen.insert(key, now);
        self.order.push_back((key, now));
        true
    }
}

/// A query and where its verdict goes.
pub type Asked = (PolicyQuery, oneshot::Sender<Verdict>);

/// Why a request was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("not a Postfix policy request (request={0:?})")]
    NotPolicy(Option<String>),
    #[error("no client_address in the request")]
    NoClient,
    #[error("client_address {0:?} is not an IP address")]
    BadClient(String),
}

/// The query in one request's attributes.
pub fn query(attributes: &[(String, String)]) -> Result<PolicyQuery, PolicyError> {
    let get = |name: &str| {
        attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    match get("request") {
        Some("smtpd_access_policy") => {}
        other => return Err(PolicyError::NotPolicy(other.map(str::to_owned))),
    }
    let text = get("client_address").ok_or(PolicyError::NoClient)?;
    let client = text
        .parse()
        .map_err(|_| PolicyError::BadClient(text.to_owned()))?;
    let connect = get("protocol_state").is_some_and(|s| s.eq_ignore_ascii_case("CONNECT"));
    let port = get("client_port").and_then(|p| p.parse().ok());
    Ok(PolicyQuery {
        client,
        port,
        connect,
    })
}

/// The answer to Postfix, empty line included.
pub fn reply(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Accept => "action=DUNNO\n\n".to_owned(),
        Verdict::Defer {
            prefix,
            counted,
            limit,
        } => format!(
            "action=DEFER 4.7.1 Too many connections from {prefix} across the cluster ({counted} in {} s, {} allowed)\n\n",
            limit.window.as_secs(),
            limit.connections
        ),
    }
}

/// Accepts Postfix's connections until the daemon stops listening; each is served on a task
/// of its own.
pub async fn serve(listener: TcpListener, daemon: mpsc::Sender<Asked>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                debug!(%peer, "policy client connected");
                tokio::spawn(connection(stream, daemon.clone()));
            }
            Err(e) => {
                warn!("policy listener: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(stream: TcpStream, daemon: mpsc::Sender<Asked>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut attributes = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = AsyncReadExt::take(&mut lines, LINE_MAX as u64 + 1)
            .read_until(b'\n', &mut line)
            .await;
        match read {
            Ok(0) | Err(_) => return,
            Ok(_) if line.len() > LINE_MAX => {
                warn!("a policy request line is over {LINE_MAX} bytes: closing");
                return;
            }
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if !text.is_empty() {
            if attributes.len() >= ATTRIBUTES_MAX {
                warn!("a policy request has over {ATTRIBUTES_MAX} attributes: closing");
                return;
            }
            if let Some((name, value)) = text.split_once('=') {
                attributes.push((name.to_owned(), value.to_owned()));
            }
            continue;
        }
        let answer = match query(&attributes) {
            Ok(q) => {
                let (tell, verdict) = oneshot::channel();
                if daemon.send((q, tell)).await.is_err() {
                    return;
                }
                match verdict.await {
                    Ok(v) => reply(&v),
                    Err(_) => return,
                }
            }
            Err(e) => {
                warn!("policy request refused: {e}");
                // Postfix reads an unknown answer as a temporary error; DUNNO lets the mail
                // through the other restrictions instead.
                "action=DUNNO\n\n".to_owned()
            }
        };
        attributes.clear();
        if write.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_request_gives_its_client_and_whether_it_just_connected() {
        let q = query(&attributes(&[
            ("request", "smtpd_access_policy"),
            ("protocol_state", "CONNECT"),
            ("client_address", "198.51.100.7"),
            ("client_name", "unknown"),
        ]))
        .expect("a query");
        assert_eq!(
            q,
            PolicyQuery {
                client: "198.51.100.7".parse().expect("ip"),
                port: None,
                connect: true
            }
        );
        let later = query(&attributes(&[
            ("request", "smtpd_access_policy"),
            ("protocol_state", "RCPT"),
            ("client_address", "2001:db8::5"),
        ]))
        .expect("a query");
        assert!(!later.connect);
    }

    #[test]
    fn the_first_request_of_a_connection_counts_and_the_next_ones_do_not() {
        let mut sessions = Sessions::default();
        let q = |port, connect| PolicyQuery {
            client: "203.0.113.5".parse().expect("ip"),
            port,
            connect,
        };
        let t = Duration::from_secs(100);
        assert!(sessions.first(&q(Some(40000), false), t), "the first RCPT");
        assert!(
            !sessions.first(&q(Some(40000), false), t),
            "the second RCPT"
        );
        assert!(
            sessions.first(&q(Some(40001), false), t),
            "another connection"
        );
        assert!(
            sessions.first(&q(Some(40000), true), t),
            "a new CONNECT on a reused port"
        );
        assert!(
            !sessions.first(&q(None, false), t),
            "no port: only CONNECT counts"
        );
        assert!(sessions.first(&q(None, true), t));
        let later = t + SESSION_MEMORY;
        assert!(
            sessions.first(&q(Some(40001), false), later),
            "forgotten after an hour"
        );
    }

    #[test]
    fn requests_that_are_not_policy_or_lack_a_client_are_refused_in_words() {
        assert_eq!(
            query(&attributes(&[("request", "junk")])),
            Err(PolicyError::NotPolicy(Some("junk".into())))
        );
        assert_eq!(
            query(&attributes(&[("request", "smtpd_access_policy")])),
            Err(PolicyError::NoClient)
        );
        assert_eq!(
            query(&attributes(&[
                ("request", "smtpd_access_policy"),
                ("client_address", "unknown")
            ])),
            Err(PolicyError::BadClient("unknown".into()))
        );
    }

    #[test]
    fn a_deferral_says_which_prefix_and_why() {
        let limit = dvip_replicate::InboundLimit {
            prefix_v4: 24,
            prefix_v6: 64,
            connections: 30,
            window: Duration::from_secs(60),
        };
        let text = reply(&Verdict::Defer {
            prefix: "198.51.100.0/24".into(),
            counted: 30,
            limit,
        });
        assert_eq!(
            text,
            "action=DEFER 4.7.1 Too many connections from 198.51.100.0/24 across the cluster (30 in 60 s, 30 allowed)\n\n"
        );
        assert_eq!(reply(&Verdict::Accept), "action=DUNNO\n\n");
    }
}
