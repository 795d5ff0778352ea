//! `dvip lab bench --plot FILE.svg`: failover times as a picture, each system beside the
//! others per address count and fault.
//!
//! Owns the drawing: one group of bars per (address count, fault), one bar per system for
//! the median of the worst address, a whisker up to its p99. It must not measure; it reads
//! the bench's rows.

use std::fmt::Write as _;

use crate::bench::BenchRow;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 84.0;
/// One colour per system, in the order the rows name them.
const COLOURS: [&str; 6] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
];

/// A bar: its system, its group, its median and p99.
struct Bar {
    system: String,
    group: String,
    median: f64,
    p99: f64,
}

/// The SVG for the bench's `rows`, in the order they came; a row without times (no run
/// finished) draws nothing.
pub(crate) fn svg(rows: &[BenchRow], title: &str) -> String {
    let bars: Vec<Bar> = rows
        .iter()
        .filter_map(|r| {
            Some(Bar {
                system: r.system.clone(),
                group: format!("{} / {}", r.addresses, r.fault),
                median: r.worst_median_ms?,
                p99: r.worst_p99_ms?,
            })
        })
        .collect();
    let mut systems: Vec<&str> = Vec::new();
    let mut groups: Vec<&str> = Vec::new();
    for b in &bars {
        if !systems.contains(&b.system.as_str()) {
            systems.push(&b.system);
        }
        if !groups.contains(&b.group.as_str()) {
            groups.push(&b.group);
        }
    }
    let top_ms = nice_ceiling(bars.iter().map(|b| b.p99).fold(1.0, f64::max));
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y = |ms: f64| TOP + plot_h * (1.0 - ms / top_ms);
    let group_w = plot_w / groups.len().max(1) as f64;
    let bar_w = (group_w * 0.8) / systems.len().max(1) as f64;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="20" font-size="14">{}</text>"#,
        escape(title)
    );
    for step in 0..=5 {
        let ms = top_ms * f64::from(step) / 5.0;
        let at = y(ms);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{at:.1}" x2="{:.1}" y2="{at:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{ms:.0} ms</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            at + 4.0
        );
    }
    for (g, group) in groups.iter().enumerate() {
        let x0 = LEFT + group_w * g as f64 + group_w * 0.1;
        for b in bars.iter().filter(|b| b.group == *group) {
            let s = systems.iter().position(|s| *s == b.system).unwrap_or(0);
            let x = x0 + bar_w * s as f64;
            let colour = COLOURS[s % COLOURS.len()];
            let _ = writeln!(
                out,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{}: {}, median {:.1} ms, p99 {:.1} ms</title></rect>"#,
                y(b.median),
                bar_w * 0.9,
                y(0.0) - y(b.median),
                escape(&b.system),
                escape(&b.group),
                b.median,
                b.p99
            );
            let mid = x + bar_w * 0.45;
            let _ = writeln!(
                out,
                r##"<line x1="{mid:.1}" y1="{:.1}" x2="{mid:.1}" y2="{:.1}" stroke="#333"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333"/>"##,
                y(b.median),
                y(b.p99),
                mid - bar_w * 0.2,
                y(b.p99),
                mid + bar_w * 0.2,
                y(b.p99)
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + group_w * (g as f64 + 0.5),
            y(0.0) + 16.0,
            escape(group)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">addresses / fault (bars: median of the worst address; whiskers: p99)</text>"#,
        LEFT + plot_w / 2.0,
        y(0.0) + 36.0
    );
    for (s, system) in systems.iter().enumerate() {
        let x = LEFT + 180.0 * s as f64;
        let at = HEIGHT - 18.0;
        let _ = writeln!(
            out,
            r#"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{at:.1}">{}</text>"#,
            at - 10.0,
            COLOURS[s % COLOURS.len()],
            x + 16.0,
            escape(system)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// The smallest of 1, 2 or 5 times a power of ten at or above `ms`, so the axis reads well.
fn nice_ceiling(ms: f64) -> f64 {
    let power = 10f64.powf(ms.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|v| *v >= ms)
        .unwrap_or(10.0 * power)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(system: &str, fault: &str, median: f64, p99: f64) -> BenchRow {
        BenchRow {
            system: system.into(),
            addresses: 1024,
            moved_per_run: Some(342),
            fault: fault.into(),
            runs: 20,
            worst_median_ms: Some(median),
            worst_p99_ms: Some(p99),
            view_median_ms: None,
            planned_median_ms: None,
            plumbed_median_ms: None,
            announced_median_ms: None,
            takeover_ready_median_ms: None,
            takeover_ready_p99_ms: None,
            took_over_median_ms: None,
            dvip_share_median_ms: None,
            dvip_share_p99_ms: None,
            double_answers: 0,
            survivor_doubles: 0,
            survivor_handovers: 0,
            dark_again: 0,
            longest_silence_after_answer_ms: None,
            runs_with_corosync_paused: 0,
            tcp_worst_median_ms: None,
            tcp_worst_p99_ms: None,
            tcp_runs: 0,
            tcp_unanswered: 0,
            unanswered: 0,
            per_run: Vec::new(),
        }
    }

    #[test]
    fn every_row_is_a_bar_with_its_whisker_and_the_axis_covers_the_slowest() {
        let rows = vec![
            row("dvip", "host", 308.3, 326.9),
            row("keepalived 20ms", "host", 83.8, 96.3),
            row("dvip", "daemon", 71.1, 78.4),
        ];

        let svg = svg(&rows, "failover <1,024>");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<title>").count(), 3);
        assert!(svg.contains("dvip: 1024 / host, median 308.3 ms, p99 326.9 ms"));
        assert!(
            svg.contains("500 ms"),
            "the axis reaches the next round number: {svg}"
        );
        assert!(svg.contains("failover &lt;1,024&gt;"));
        assert_eq!(nice_ceiling(326.9), 500.0);
        assert_eq!(nice_ceiling(96.0), 100.0);
        assert_eq!(nice_ceiling(1200.0), 2000.0);
    }
}
