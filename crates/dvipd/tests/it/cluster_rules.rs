//! The election's rules on a real cluster: a preference brings an address home, a follower
//! moves with its binding, and members that describe an address differently see it marked.

use std::time::Duration;

use dvip_netns::Lab;

use crate::cluster::{logs, socket, start_with, wait};

const HEAD: &str = "Topology \"198.51.100.0/24\" { interface = \"eth0\" } }\n";

fn cluster_stanza(i: usize) -> String {
    format!("cluster {{ nodename = node{i}  {HEAD}")
}

fn holds(node: &[String], address: &str) -> bool {
    node.iter().any(|a| a == address)
}

#[test]
fn a_preferred_node_gets_its_address_back_when_it_joins() {
    let lab = Lab::new("dvr", 2);
    let config = |i| {
        format!(
            "{}Binding \"a\" {{ Enable_Duravip = true  Bind_Address = 198.51.100.11  Duravip_Preference = \"node2\" }}\n\
             Binding \"b\" {{ Enable_Duravip = true  Bind_Address = 198.51.100.12 }}\n",
            cluster_stanza(i)
        )
    };
    let _one = start_with(&lab, 1, &config(1));
    wait(
        &lab,
        Duration::from_secs(10),
        "node1 alone holds both",
        |h| h[0].len() == 2,
    );
    let _two = start_with(&lab, 2, &config(2));
    wait(
        &lab,
        Duration::from_secs(10),
        "198.51.100.11 goes home to node2, 198.51.100.12 stays",
        |h| holds(&h[1], "198.51.100.11") && holds(&h[0], "198.51.100.12") && h[0].len() == 1,
    );
}

#[test]
fn a_follower_goes_wherever_its_binding_goes() {
    let lab = Lab::new("dvr", 2);
    let config = |i| {
        format!(
            "{}Binding \"a\" {{ Enable_Duravip = true  Bind_Address = 198.51.100.11 }}\n\
             Binding \"b\" {{ Enable_Duravip = true  Bind_Address = 198.51.100.12 }}\n\
             ESMTP_Listener {{ Listen \"198.51.100.15:25\" {{ Duravip_Follow = \"a\" }} }}\n",
            cluster_stanza(i)
        )
    };
    let mut one = start_with(&lab, 1, &config(1));
    let mut two = start_with(&lab, 2, &config(2));
    let together = |h: &[Vec<String>]| {
        (0..2).any(|n| holds(&h[n], "198.51.100.11") && holds(&h[n], "198.51.100.15"))
            && h.iter().flatten().count() == 3
    };
    wait(
        &lab,
        Duration::from_secs(10),
        "the follower sits with its binding",
        together,
    );
    // Kill whichever node has the pair: both move to the survivor.
    let pair_on_one = holds(&lab.addresses(1), "198.51.100.11");
    let (victim, survivor) = if pair_on_one {
        (&mut one, 1)
    } else {
        (&mut two, 0)
    };
    victim.0.kill().expect("kill -9");
    wait(
        &lab,
        Duration::from_secs(5),
        "binding and follower both on the survivor",
        |h| holds(&h[survivor], "198.51.100.11") && holds(&h[survivor], "198.51.100.15"),
    );
}

#[test]
fn members_that_disagree_about_an_address_see_it_marked() {
    let lab = Lab::new("dvr", 2);
    // .11: each node prefers itself (CONFLICT). .12: node1 also listens on it (UNSAFE).
    // `c`: node1 binds it to .13, node2 to .14 (BROKEN: nobody manages either).
    let node1 = format!(
        "{}Binding \"a\" {{ Enable_Duravip = true  Bind_Address = 198.51.100.11  Duravip_Preference = \"node1\" }}\n\
         Binding \"b\" {{ Enable_Duravip = true  Bind_Address = 198.51.100.12 }}\n\
         ESMTP_Listener {{ Listen \"198.51.100.12:25\" {{ }} }}\n\
         Binding \"c\" {{ Enable_Duravip = true  Bind_Address = 198.51.100.13 }}\n",
        cluster_stanza(1)
    );
    let node2 = format!(
        "{}Binding \"a\" {{ Enable_Duravip = true  Bind_Address = 198.51.100.11  Duravip_Preference = \"node2\" }}\n\
         Binding \"b\" {{ Enable_Duravip = true  Bind_Address = 198.51.100.12 }}\n\
         Binding \"c\" {{ Enable_Duravip = true  Bind_Address = 198.51.100.14 }}\n",
        cluster_stanza(2)
    );
    let _one = start_with(&lab, 1, &node1);
    let _two = start_with(&lab, 2, &node2);
    let marks = |reply: &serde_json::Value, address: &str| -> Vec<String> {
        reply["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["address"] == address)
            .and_then(|a| a["marks"].as_array())
            .map(|m| {
                m.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    for i in 1..=2 {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let reply = if socket(&lab, i).exists() {
                crate::call(&socket(&lab, i), &serde_json::json!({"command": "show"}))
            } else {
                serde_json::Value::Null
            };
            let seen = (
                marks(&reply, "198.51.100.11"),
                marks(&reply, "198.51.100.12"),
                marks(&reply, "198.51.100.13"),
                marks(&reply, "198.51.100.14"),
            );
            let want = |m: &Vec<String>, word: &str| m.iter().any(|s| s == word);
            if want(&seen.0, "CONFLICT")
                && want(&seen.1, "UNSAFE")
                && want(&seen.2, "BROKEN")
                && want(&seen.3, "BROKEN")
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node{i} sees marks {seen:?}\n{}",
                logs(&lab)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // A CONFLICT or UNSAFE address is still served, once; a BROKEN one by nobody.
    wait(
        &lab,
        Duration::from_secs(5),
        "the marked addresses are served as their marks say",
        |h| {
            let all: Vec<&String> = h.iter().flatten().collect();
            let count = |a: &str| all.iter().filter(|x| **x == a).count();
            count("198.51.100.11") == 1
                && count("198.51.100.12") == 1
                && count("198.51.100.13") == 0
                && count("198.51.100.14") == 0
        },
    );
}
