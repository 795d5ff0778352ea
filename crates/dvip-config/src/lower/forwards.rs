//! Forwards: listeners whose connections dvipd relays to a local backend.
//!
//! Owns the rules of `Duravip_Forward` and `Duravip_Proxy_Protocol`: only on a DuraVIP
//! listener address (dvipd answers there only while the node owns it), never to the listener
//! itself, and no PROXY protocol switch without a forward. It must not decide which addresses
//! are DuraVIP; `addresses` did that.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use crate::diagnostic::{Code, Diagnostics};
use crate::model::{DuravipAddress, ListenerForward};

use super::services::{Kind, Service};

pub(crate) fn collect(
    services: &[Service<'_>],
    addresses: &[DuravipAddress],
    diagnostics: &mut Diagnostics,
) -> Vec<ListenerForward> {
    let managed: BTreeSet<IpAddr> = addresses.iter().map(|a| a.managed.address).collect();
    let mut forwards = Vec::new();
    for service in services {
        let Kind::Listener { port, .. } = service.kind else {
            continue;
        };
        let Some((backend, word)) = service.forward else {
            if let Some((true, word)) = service.proxy_protocol {
                diagnostics
                    .error(
                        Code::BadForward,
                        word.span,
                        format!(
                            "{} sends a PROXY protocol header but forwards nowhere",
                            service.describe()
                        ),
                    )
                    .with_hint("add `Duravip_Forward = \"127.0.0.1:PORT\"`, or remove the switch");
            }
            continue;
        };
        let Some(address) = service.address.filter(|a| managed.contains(a)) else {
            diagnostics
                .error(
                    Code::BadForward,
                    word.span,
                    format!(
                        "{} forwards to {backend}, but its address is not DuraVIP",
                        service.describe()
                    ),
                )
                .with_hint(
                    "dvipd relays only on addresses it moves: add `Enable_Duravip = true`, or \
                     let the service listen there itself",
                );
            continue;
        };
        if backend == SocketAddr::new(address, port) {
            diagnostics
                .error(
                    Code::BadForward,
                    word.span,
                    format!("{} forwards to itself", service.describe()),
                )
                .with_hint("forward to where the local service listens, such as 127.0.0.1:2525");
            continue;
        }
        forwards.push(ListenerForward {
            address,
            port,
            backend,
            proxy_protocol: service.proxy_protocol.is_some_and(|(on, _)| on),
        });
    }
    forwards.sort_by_key(|f| (f.address, f.port));
    forwards
}
