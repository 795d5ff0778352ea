//! `dvip show`, `membership`, `info`, `arp show`, `announce-view`, `standby`, `online`,
//! `move`: talking to the local dvipd.
//!
//! Owns how replies are shown. The request format and the socket are dvipd's console module.

use std::path::Path;

use serde_json::Value;

use crate::Outcome;

fn call(socket: &Path, request: &Value) -> Result<Value, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start: {e}"))?;
    runtime
        .block_on(dvipd::console::call(socket, request))
        .map_err(|e| {
            format!(
                "cannot reach dvipd at {}: {e} (is dvipd running? see --socket)",
                socket.display()
            )
        })
}

/// The daemon's reply to `request`, or `None` after saying why there is none.
fn ask(socket: &Path, request: &Value) -> Option<Value> {
    call(socket, request)
        .map_err(|e| eprintln!("dvip: {e}"))
        .ok()
}

/// The reply's error, said on stderr; `None` when the daemon did what was asked.
fn refused(reply: &Value) -> Option<&str> {
    let error = failed(reply)?;
    eprintln!("dvip: {error}");
    Some(error)
}

/// Prints a reply or report as indented JSON.
pub(crate) fn print_json(reply: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(reply).unwrap_or_default()
    );
}

fn failed(reply: &Value) -> Option<&str> {
    (reply["ok"] != true).then(|| {
        reply["error"]
            .as_str()
            .unwrap_or("dvipd refused the request")
    })
}

/// Asks the daemon `command`; prints the reply as JSON when `json`, else hands it to `text`.
fn report(socket: &Path, command: &str, json: bool, text: impl FnOnce(&Value)) -> Outcome {
    let Some(reply) = ask(socket, &serde_json::json!({ "command": command })) else {
        return Outcome::Failed;
    };
    if refused(&reply).is_some() {
        return Outcome::Failed;
    }
    if json {
        print_json(&reply);
    } else {
        text(&reply);
    }
    Outcome::Ok
}

/// `12.3 s`, `4 min 05 s`, `2 h 07 min`: how long something has stood.
fn age(ms: &Value) -> String {
    let Some(ms) = ms.as_u64() else {
        return "-".to_owned();
    };
    let s = ms / 1000;
    match s {
        0..60 => format!("{:.1} s", ms as f64 / 1000.0),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

pub(crate) fn show(socket: &Path, json: bool) -> Outcome {
    report(socket, "show", json, show_text)
}

fn show_text(reply: &Value) {
    membership_text(reply);
    print!("{}", reply["table"].as_str().unwrap_or_default());
    let list = |key: &str| -> Vec<String> {
        reply[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let failing = list("not_plumbed");
    if !failing.is_empty() {
        println!(
            "held here but NOT PLUMBED (being retried; dark until then): {}",
            failing.join(", ")
        );
    }
    let given_up = list("given_up_interfaces");
    if !given_up.is_empty() {
        println!(
            "interfaces given up (plumbing failed; their addresses are offered again when the \
             interface comes up, or on reload): {}",
            given_up.join(", ")
        );
    }
}

pub(crate) fn membership(socket: &Path, json: bool) -> Outcome {
    // The view is part of `show`; this report keeps only it.
    report(socket, "show", json, membership_text)
}

fn membership_text(reply: &Value) {
    if reply["waiting_for_corosync"] == true {
        println!("waiting for corosync: this node is in no view and holds nothing");
    }
    let view = &reply["view"];
    let members: Vec<&str> = view["members"]
        .as_array()
        .map(|m| m.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let state = match (view["ready"] == true, view["mature"] == true) {
        (false, _) => "waiting for every member's state",
        (true, false) => "settling (planned moves wait until the view matures)",
        (true, true) => "settled",
    };
    println!(
        "node {}{}, view {} of {} ({}): {state}",
        reply["node"].as_str().unwrap_or("?"),
        if reply["standby"] == true {
            " (standby)"
        } else {
            ""
        },
        view["id"],
        members.len(),
        members.join(", "),
    );
    println!(
        "view stable for {}, configuration ({} addresses) stable for {}",
        age(&view["stable_ms"]),
        reply["config"]["addresses"],
        age(&reply["config"]["stable_ms"]),
    );
}

pub(crate) fn info(socket: &Path, json: bool) -> Outcome {
    report(socket, "info", json, info_text)
}

fn info_text(r: &Value) {
    {
        let bus = &r["bus"];
        println!(
            "dvipd {} on node {} (pid {}), up {}",
            r["version"].as_str().unwrap_or("?"),
            r["node"].as_str().unwrap_or("?"),
            r["pid"],
            age(&r["uptime_ms"])
        );
        println!(
            "configuration {} ({} addresses), stable for {}",
            r["config_file"].as_str().unwrap_or("?"),
            r["config"]["addresses"],
            age(&r["config"]["stable_ms"])
        );
        match bus["kind"].as_str() {
            Some("corosync") => println!(
                "bus: corosync, group {}, {}",
                bus["group"].as_str().unwrap_or("?"),
                if bus["joined"] == true {
                    "joined"
                } else {
                    "NOT JOINED (corosync is away: every address released)"
                }
            ),
            _ => println!("bus: standalone (a cluster of one)"),
        }
        println!(
            "holding {} addresses, lifetime {} s, announcing to {}",
            r["held"],
            r["address_lifetime_s"],
            if r["arp_all_hosts"] == true {
                "the whole link"
            } else {
                "known neighbours only"
            }
        );
        if r["holders"].as_u64().is_some_and(|h| h > 0) {
            println!(
                "{} of them on {} holder interfaces (dvip-hold0 and up), IPv4 only",
                r["held_on_holders"], r["holders"]
            );
        }
        if let Some(hook) = r["hook"].as_str() {
            println!("hook: {hook}");
        }
        for forward in r["forwarding"].as_array().into_iter().flatten() {
            println!("forwarding {}", forward.as_str().unwrap_or("?"));
        }
    }
}

pub(crate) fn arp_show(socket: &Path, json: bool) -> Outcome {
    report(socket, "arp-show", json, arp_text)
}

fn arp_text(r: &Value) {
    {
        println!(
            "node {}: announcing to {}",
            r["node"].as_str().unwrap_or("?"),
            if r["mode"] == "all-hosts" {
                "the whole link"
            } else {
                "known neighbours only"
            }
        );
        println!(
            "{:<40} {:<12} {:>13} {:>6}",
            "ADDRESS", "INTERFACE", "ANNOUNCEMENTS", "FRAMES"
        );
        for a in r["addresses"].as_array().into_iter().flatten() {
            println!(
                "{:<40} {:<12} {:>13} {:>6}",
                a["address"].as_str().unwrap_or("?"),
                a["interface"].as_str().unwrap_or("?"),
                a["announcements"],
                a["frames_last"],
            );
        }
    }
}

/// How one node's reply to a report is shown.
type Render = fn(&Value);

/// The console request a broadcast's words name, and how each node's reply is shown.
fn broadcast_request(words: &[String]) -> Option<(&'static str, Render)> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    Some(match words.as_slice() {
        ["show"] | ["cluster", "duravip", "show"] => ("show", show_text),
        ["membership"] => ("show", membership_text),
        ["info"] => ("info", info_text),
        ["arp", "show"] => ("arp-show", arp_text),
        ["announce-view"] | ["announce", "view"] | ["cluster", "duravip", "announce", "view"] => {
            ("announce-view", |_| println!("ok"))
        }
        _ => return None,
    })
}

pub(crate) fn broadcast(socket: &Path, words: &[String], json: bool) -> Outcome {
    let Some((command, text)) = broadcast_request(words) else {
        eprintln!(
            "dvip: `{}` cannot be broadcast; try `show`, `membership`, `info`, `arp show` or \
             `cluster duravip announce view`",
            words.join(" ")
        );
        return Outcome::Usage;
    };
    let request = serde_json::json!({"command": "broadcast", "request": {"command": command}});
    let Some(reply) = ask(socket, &request) else {
        return Outcome::Failed;
    };
    // Each node's reply is shown even when some failed or stayed silent.
    if json {
        print_json(&reply);
    } else {
        for (node, answer) in reply["replies"].as_object().into_iter().flatten() {
            println!("== {node}");
            match failed(answer) {
                Some(e) => println!("error: {e}"),
                None => text(answer),
            }
        }
    }
    match refused(&reply) {
        None => Outcome::Ok,
        Some(_) => Outcome::Failed,
    }
}

pub(crate) fn command(socket: &Path, request: &Value) -> Outcome {
    match ask(socket, request).as_ref().map(refused) {
        Some(None) => {
            println!("ok");
            Outcome::Ok
        }
        _ => Outcome::Failed,
    }
}

pub(crate) fn events(socket: &Path) -> Outcome {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dvip: cannot start: {e}");
            return Outcome::Failed;
        }
    };
    let mut first = true;
    let followed = runtime.block_on(dvipd::console::follow(socket, |line| {
        // The first line only says the daemon accepted the request.
        if !std::mem::take(&mut first) {
            println!("{line}");
        }
    }));
    match followed {
        Ok(()) => Outcome::Ok,
        Err(e) => {
            eprintln!(
                "dvip: cannot follow dvipd at {}: {e} (is dvipd running? see --socket)",
                socket.display()
            );
            Outcome::Failed
        }
    }
}
