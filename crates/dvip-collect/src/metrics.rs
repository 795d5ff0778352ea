//! The aggregator's metrics: what `dvip collect status` shows, in the OpenMetrics text format
//! on `GET /metrics`.
//!
//! Owns the metric names and the small HTTP endpoint (`dvip collect --metrics ADDR:PORT`). It
//! must not change the board: it reads a snapshot at each scrape.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tracing::warn;

use crate::status::Board;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabel {
    node: String,
    log: String,
}

/// The exposition of `board` now.
pub fn encode(board: &Board, aggregator: &str) -> String {
    let mut registry = Registry::with_prefix("dvip_collect");
    let connected = Family::<StreamLabel, Gauge>::default();
    let lag_records = Family::<StreamLabel, Gauge>::default();
    let lag_bytes = Family::<StreamLabel, Gauge>::default();
    let lag_seconds = Family::<StreamLabel, Gauge<f64, AtomicU64>>::default();
    let lines = Family::<StreamLabel, Counter>::default();
    let bytes = Family::<StreamLabel, Counter>::default();
    for s in board.report(aggregator).streams {
        if s.log.is_empty() {
            continue;
        }
        let label = StreamLabel {
            node: s.node.clone(),
            log: s.log.clone(),
        };
        connected.get_or_create(&label).set(i64::from(s.connected));
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        if let Some(n) = s.lag_records {
            lag_records.get_or_create(&label).set(clamp(n));
        }
        if let Some(n) = s.lag_bytes {
            lag_bytes.get_or_create(&label).set(clamp(n));
        }
        if let Some(n) = s.lag_seconds {
            lag_seconds.get_or_create(&label).set(n);
        }
        lines.get_or_create(&label).inc_by(s.written_lines);
        bytes.get_or_create(&label).inc_by(s.written_bytes);
    }
    registry.register(
        "connected",
        "1 while a node's log is being replayed",
        connected,
    );
    registry.register(
        "lag_records",
        "Records the node holds that this aggregator has not acknowledged",
        lag_records,
    );
    registry.register("lag_bytes", "Their payload bytes", lag_bytes);
    registry.register(
        "lag_seconds",
        "Age of the oldest record not acknowledged; 0 when caught up",
        lag_seconds,
    );
    registry.register("written_lines", "Lines written to the files", lines);
    registry.register("written_bytes", "Bytes written to the files", bytes);
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
        text.clear();
    }
    text
}

/// Serves `GET /metrics` on `at` until `stop`.
pub fn serve(
    at: SocketAddr,
    board: Board,
    aggregator: String,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(at)?;
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("collect-metrics".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let mut stream = match listener.accept() {
                    Ok((stream, _)) => stream,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                    Err(e) => {
                        warn!("metrics: cannot accept: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = [0u8; 4096];
                let n = stream.read(&mut head).unwrap_or(0);
                let request = String::from_utf8_lossy(&head[..n]);
                let mut words = request.split_whitespace();
                let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let path = target.split('?').next().unwrap_or("");
                let response = if matches!(method, "GET" | "HEAD") && path == "/metrics" {
                    let body = encode(&board, &aggregator);
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                        body.len(),
                        if method == "GET" { body.as_str() } else { "" }
                    )
                } else {
                    let body = "dvip collect serves GET and HEAD /metrics only\n";
                    format!(
                        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = stream.write_all(response.as_bytes());
            }
        })?;
    Ok(())
}
