//! Metrics: what the daemon counts and measures, in the OpenMetrics text format over HTTP.
//!
//! Owns the metric names, their help texts and the tiny HTTP endpoint that serves them
//! (`GET` or `HEAD /metrics` on the address `--metrics` names). It must not decide anything;
//! the daemon updates the metrics as it carries out the core's actions.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::warn;

/// What failed, for `dvip_errors_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorKind {
    /// `plumb`, `unplumb`, `announce`, `forward`, `hook` or `bus`.
    pub kind: &'static str,
}

/// What the policy server answered, for `dvip_policy_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabel {
    /// `accept` or `defer`.
    pub verdict: &'static str,
}

/// What the local API answered, for `dvip_api_commands_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabel {
    /// The command's name, upper-case (`GET`, `OUTBOUND.OPEN`...).
    pub command: &'static str,
    /// `ok` or `error`.
    pub outcome: &'static str,
}

/// Why a message from the bus was dropped, for `dvip_dropped_messages_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropKind {
    /// `fragment` (a piece refused before reassembly), or the core's reason (`decode`,
    /// `stale`, `not_member`, `no_view`, `not_carried`).
    pub reason: &'static str,
}

/// One address, for `dvip_address_owned`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AddressLabel {
    /// The address.
    pub address: String,
}

/// The build, for `dvip_build_info`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabel {
    /// dvipd's version.
    pub version: &'static str,
}

/// What the scrape says the body is: the OpenMetrics text that `prometheus_client` writes
/// (it ends with `# EOF`), which Prometheus reads.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric dvipd exports.
pub struct Metrics {
    registry: Registry,
    /// 1 for each address this node holds (an address let go leaves the family).
    pub owned: Family<AddressLabel, Gauge>,
    /// 1 while this node is on standby.
    pub standby: Gauge,
    /// How many different configurations the view's members announce: more than 1 means
    /// they disagree (`dvip status` says who).
    pub configurations: Gauge,
    /// Seconds since this node's view was last planned, set when scraped.
    since_planned: Gauge<f64, AtomicU64>,
    /// When the view was last planned.
    planned_at: Mutex<Option<Instant>>,
    /// Addresses this node holds and has plumbed.
    pub held: Gauge,
    /// Addresses this node holds whose plumb failed (dark while it retries).
    pub not_plumbed: Gauge,
    /// Addresses plumbed here ahead of need, silent until a takeover (`dvipd --pre-plumb`).
    pub readied: Gauge,
    /// Addresses given up after failing to plumb past the deadline.
    pub plumb_give_ups: Counter,
    /// DuraVIP addresses in this node's configuration.
    pub configured: Gauge,
    /// Members of the current view.
    pub members: Gauge,
    /// 1 while joined to corosync (or on the standalone bus), 0 while corosync is away.
    pub bus_joined: Gauge,
    /// Views installed.
    pub view_changes: Counter,
    /// Addresses acquired.
    pub acquisitions: Counter,
    /// Addresses released.
    pub releases: Counter,
    /// Addresses acquired in a view that a member left: takeovers after a failure.
    pub failovers: Counter,
    /// Time the core took to digest one input (the election included).
    pub election_seconds: Histogram,
    /// Time one run of plumbing took (many addresses at once after a failure).
    pub plumb_seconds: Histogram,
    /// Failures by kind.
    pub errors: Family<ErrorKind, Counter>,
    /// Messages from the bus dropped, by reason.
    pub dropped: Family<DropKind, Counter>,
    /// Members found silent (no State within the deadline).
    pub silent: Counter,
    /// Connections accepted by forward-mode listeners.
    pub forwarded: Counter,
    /// Forwarded connections whose backend did not accept them.
    pub backend_failures: Counter,
    /// Forwarded connections closed at once because the relay limit was reached.
    pub forward_refused: Counter,
    /// Relays closed for being idle.
    pub forward_idle_closed: Counter,
    /// The log inputs and the journals' backlog.
    pub logs: crate::logs::metrics::LogMetrics,
    /// Policy requests answered, by verdict.
    pub policy: Family<VerdictLabel, Counter>,
    /// Local API commands answered, by command and outcome.
    pub api: Family<ApiLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("dvip");
        let held = Gauge::default();
        let not_plumbed = Gauge::default();
        let readied = Gauge::default();
        let plumb_give_ups = Counter::default();
        let configured = Gauge::default();
        let members = Gauge::default();
        let bus_joined = Gauge::default();
        let view_changes = Counter::default();
        let acquisitions = Counter::default();
        let releases = Counter::default();
        let failovers = Counter::default();
        // 100 µs to ~3 s: an election over a few addresses up to a mass takeover.
        let election_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        let plumb_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 18));
        let errors = Family::<ErrorKind, Counter>::default();
        let dropped = Family::<DropKind, Counter>::default();
        let silent = Counter::default();
        let forwarded = Counter::default();
        let backend_failures = Counter::default();
        let forward_refused = Counter::default();
        let forward_idle_closed = Counter::default();
        let owned = Family::<AddressLabel, Gauge>::default();
        let standby = Gauge::default();
        let configurations = Gauge::default();
        let since_planned = Gauge::<f64, AtomicU64>::default();
        let build = prometheus_client::metrics::info::Info::new(BuildLabel {
            version: env!("CARGO_PKG_VERSION"),
        });
        registry.register(
            "address_owned",
            "1 for each address this node holds",
            owned.clone(),
        );
        registry.register(
            "standby",
            "1 while this node is on standby",
            standby.clone(),
        );
        registry.register(
            "view_configurations",
            "Different configurations the view's members announce; above 1 they disagree",
            configurations.clone(),
        );
        registry.register(
            "view_planned_age_seconds",
            "Seconds since this node's view was last planned",
            since_planned.clone(),
        );
        registry.register("build", "dvipd's build", build);
        registry.register(
            "addresses_held",
            "Addresses this node holds and has plumbed",
            held.clone(),
        );
        registry.register(
            "addresses_not_plumbed",
            "Addresses this node holds whose plumb failed and is being retried",
            not_plumbed.clone(),
        );
        registry.register(
            "addresses_readied",
            "Addresses plumbed here ahead of need, silent until a takeover lets them answer",
            readied.clone(),
        );
        registry.register(
            "plumb_give_ups",
            "Addresses given up (released, their interface no longer offered) after failing to plumb past the deadline",
            plumb_give_ups.clone(),
        );
        registry.register(
            "addresses_configured",
            "DuraVIP addresses in this node's configuration",
            configured.clone(),
        );
        registry.register(
            "view_members",
            "Members of the current view",
            members.clone(),
        );
        registry.register(
            "bus_joined",
            "1 while the node is on its group bus, 0 while corosync is away",
            bus_joined.clone(),
        );
        registry.register("view_changes", "Views installed", view_changes.clone());
        registry.register("acquisitions", "Addresses acquired", acquisitions.clone());
        registry.register("releases", "Addresses released", releases.clone());
        registry.register(
            "failovers",
            "Addresses acquired in a view that a member left",
            failovers.clone(),
        );
        registry.register(
            "election_seconds",
            "Time the core took to digest one bus input, election included",
            election_seconds.clone(),
        );
        registry.register(
            "plumb_seconds",
            "Time one run of plumbing took",
            plumb_seconds.clone(),
        );
        registry.register("errors", "Failures by kind", errors.clone());
        registry.register(
            "silent_members",
            "Members found silent: no State within the deadline",
            silent.clone(),
        );
        registry.register(
            "dropped_messages",
            "Messages from the bus dropped, by reason",
            dropped.clone(),
        );
        registry.register(
            "forwarded_connections",
            "Connections accepted by forward-mode listeners",
            forwarded.clone(),
        );
        registry.register(
            "forward_backend_failures",
            "Forwarded connections whose backend did not accept them",
            backend_failures.clone(),
        );
        registry.register(
            "forward_refused",
            "Forwarded connections closed at once because the relay limit was reached",
            forward_refused.clone(),
        );
        registry.register(
            "forward_idle_closed",
            "Relays closed after carrying nothing for the idle timeout",
            forward_idle_closed.clone(),
        );
        let logs = crate::logs::metrics::LogMetrics::register(&mut registry);
        let policy = Family::<VerdictLabel, Counter>::default();
        registry.register(
            "policy_requests",
            "Policy requests answered, by verdict (accept, defer)",
            policy.clone(),
        );
        let api = Family::<ApiLabel, Counter>::default();
        registry.register(
            "api_commands",
            "Local API commands answered, by command and outcome (ok, error)",
            api.clone(),
        );
        Self {
            policy,
            api,
            registry,
            logs,
            owned,
            standby,
            configurations,
            since_planned,
            planned_at: Mutex::new(None),
            held,
            not_plumbed,
            readied,
            plumb_give_ups,
            configured,
            members,
            bus_joined,
            view_changes,
            acquisitions,
            releases,
            failovers,
            election_seconds,
            plumb_seconds,
            errors,
            dropped,
            silent,
            forwarded,
            backend_failures,
            forward_refused,
            forward_idle_closed,
        }
    }
}

impl Metrics {
    /// Counts one failure of `kind`.
    pub fn error(&self, kind: &'static str) {
        self.errors.get_or_create(&ErrorKind { kind }).inc();
    }

    /// Counts one message dropped for `reason`.
    pub fn dropped(&self, reason: &'static str) {
        self.dropped.get_or_create(&DropKind { reason }).inc();
    }

    /// Says the view was planned now.
    pub fn planned(&self) {
        if let Ok(mut at) = self.planned_at.lock() {
            *at = Some(Instant::now());
        }
    }

    /// Counts `address` as held (or, with `false`, as let go).
    pub fn own(&self, address: IpAddr, held: bool) {
        let label = AddressLabel {
            address: address.to_string(),
        };
        if held {
            self.owned.get_or_create(&label).set(1);
        } else {
            self.owned.remove(&label);
        }
    }

    /// The OpenMetrics text exposition. It reads the journals' backlog from disk: call it off
    /// the daemon's loop.
    pub fn encode(&self) -> String {
        self.logs.refresh();
        if let Some(at) = self.planned_at.lock().ok().and_then(|at| *at) {
            self.since_planned.set(at.elapsed().as_secs_f64());
        }
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

/// How long a scraper may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds `at` and serves `GET /metrics` there until the daemon stops.
pub async fn serve(at: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let listener = TcpListener::bind(at).await?;
    tokio::spawn(async move {
        let mut backoff = crate::accept::Backoff::new("metrics");
        loop {
            let (mut stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    backoff.failed(&e).await;
                    continue;
                }
            };
            backoff.accepted();
            let metrics = Arc::clone(&metrics);
            tokio::spawn(async move {
                let mut head = vec![0u8; 4096];
                let mut len = 0;
                let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
                    while !head[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < head.len() {
                        match stream.read(&mut head[len..]).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => len += n,
                        }
                    }
                })
                .await;
                if read.is_err() {
                    return;
                }
                let request = String::from_utf8_lossy(&head[..len]).into_owned();
                // Off the loop: the journals' backlog is read from disk.
                let body = if serves_metrics(&request) {
                    tokio::task::spawn_blocking(move || metrics.encode())
                        .await
                        .unwrap_or_default()
                } else {
                    String::new()
                };
                let response = respond(&request, || body);
                if let Err(e) = stream.write_all(response.as_bytes()).await {
                    warn!(%peer, "cannot answer a metrics request: {e}");
                }
            });
        }
    });
    Ok(())
}

/// Whether `request` is a `GET` or `HEAD` of `/metrics` (any query string ignored).
fn serves_metrics(request: &str) -> bool {
    let mut words = request.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split(['?', '#']).next().unwrap_or("");
    matches!(method, "GET" | "HEAD") && path == "/metrics"
}

/// The HTTP response to a request: the metrics to `GET /metrics` (any query string is
/// ignored), their headers alone to `HEAD /metrics`, 404 to anything else.
fn respond(request: &str, body: impl FnOnce() -> String) -> String {
    let method = request.split_whitespace().next().unwrap_or("");
    if serves_metrics(request) {
        let body = body();
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            body.len(),
            if method == "GET" { body.as_str() } else { "" }
        )
    } else {
        let body = "dvipd serves GET and HEAD /metrics only\n";
        format!(
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_and_head_are_answered_with_the_format_written_and_queries_are_ignored() {
        let body = || "dvip_standby 0\n# EOF\n".to_owned();
        let get = respond("GET /metrics?name[]=dvip_standby HTTP/1.1\r\n\r\n", body);
        assert!(get.starts_with("HTTP/1.1 200 OK\r\n"), "{get}");
        assert!(get.contains("Content-Type: application/openmetrics-text; version=1.0.0"));
        assert!(get.ends_with("\r\n\r\ndvip_standby 0\n# EOF\n"), "{get}");
        let head = respond("HEAD /metrics HTTP/1.1\r\n\r\n", body);
        assert!(head.contains("Content-Length: 21\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "headers only: {head}");
        assert!(respond("GET /other HTTP/1.1\r\n\r\n", body).starts_with("HTTP/1.1 404"));
        assert!(respond("POST /metrics HTTP/1.1\r\n\r\n", body).starts_with("HTTP/1.1 404"));
    }

    #[test]
    fn owned_addresses_standby_and_the_build_are_exported() {
        let m = Metrics::default();
        let a: IpAddr = "198.51.100.7".parse().unwrap();
        m.own(a, true);
        m.own("198.51.100.8".parse().unwrap(), true);
        m.own("198.51.100.8".parse().unwrap(), false);
        m.standby.set(1);
        m.planned();
        let text = m.encode();
        for line in [
            "dvip_address_owned{address=\"198.51.100.7\"} 1",
            "dvip_standby 1",
            "dvip_build_info{version=\"",
            "dvip_view_planned_age_seconds ",
            "# EOF",
        ] {
            assert!(text.contains(line), "{line:?} missing in\n{text}");
        }
        assert!(
            !text.contains("198.51.100.8"),
            "a released address stays: {text}"
        );
    }

    #[test]
    fn the_exposition_names_every_metric_with_the_dvip_prefix() {
        let m = Metrics::default();
        m.held.set(3);
        m.error("plumb");
        m.election_seconds.observe(0.002);
        let text = m.encode();
        for line in [
            "dvip_addresses_held 3",
            "dvip_errors_total{kind=\"plumb\"} 1",
            "dvip_election_seconds_count 1",
            "# TYPE dvip_failovers counter",
            "dvip_view_changes_total 0",
        ] {
            assert!(text.contains(line), "{line:?} missing in\n{text}");
        }
    }
}
