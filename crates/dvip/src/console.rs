//! `dvip show`, `announce-view`, `standby`, `online`, `move`: talking to the local dvipd.
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

fn failed(reply: &Value) -> Option<&str> {
    (reply["ok"] != true).then(|| {
        reply["error"]
            .as_str()
            .unwrap_or("dvipd refused the request")
    })
}

pub(crate) fn show(socket: &Path, json: bool) -> Outcome {
    let reply = match call(socket, &serde_json::json!({"command": "show"})) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dvip: {e}");
            return Outcome::Failed;
        }
    };
    if let Some(e) = failed(&reply) {
        eprintln!("dvip: {e}");
        return Outcome::Failed;
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reply).unwrap_or_default()
        );
        return Outcome::Ok;
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
    print!("{}", reply["table"].as_str().unwrap_or_default());
    Outcome::Ok
}

pub(crate) fn command(socket: &Path, request: &Value) -> Outcome {
    match call(socket, request) {
        Ok(reply) => match failed(&reply) {
            Some(e) => {
                eprintln!("dvip: {e}");
                Outcome::Failed
            }
            None => {
                println!("ok");
                Outcome::Ok
            }
        },
        Err(e) => {
            eprintln!("dvip: {e}");
            Outcome::Failed
        }
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
