//! Services: the listeners and bindings of a configuration, whichever dialect wrote them.
//!
//! Owns finding every ESMTP listener (`ESMTP_Listener = ( ... )` and
//! `ESMTP_Listener { Listen "..." { } }`) and every binding (top level or inside a
//! `Binding_Group`), with their DuraVIP options, and the rules that concern one service alone.
//! It must not decide what an address is; `addresses` does that from the whole list.

use std::net::{IpAddr, SocketAddr};

use crate::diagnostic::{Code, Diagnostics};
use crate::model::LISTENER_PORT_DEFAULT;
use crate::options::{self, stanzas, Options, Owner, Unknown};
use crate::source::Span;
use crate::tree::{Entry, Item, OptionItem, Stanza, Value, Word};
use crate::values;

const ENABLE: &[&str] = &["enable_duravip", "duravip"];
const PREFERENCE: &[&str] = &["duravip_preference"];
const FOLLOW: &[&str] = &["duravip_follow"];
const FORWARD: &[&str] = &["duravip_forward", "forward"];
const PROXY_PROTOCOL: &[&str] = &["duravip_proxy_protocol"];
/// Momentum's own (4.2.11+): the MTA reads a PROXY header that a load balancer sends.
const MTA_PROXY_PROTOCOL: &[&str] = &["proxy_protocol"];
/// `Enable = false` (3.x) or `<status="disabled">` (2.x) turns a listener off.
const LISTENER_ENABLE: &[&str] = &["enable"];
const LISTENER_STATUS: &[&str] = &["status"];
/// What a 2.x listener list holds, for the entries that are something else.
const LIST_ENTRY_HINT: &str =
    "a listener list holds `ADDRESS[:PORT] <attributes>` entries, such as `198.51.100.10:25 <duravip=\"enabled\">`";
const LISTENER_OPTIONS: &[&str] = &[
    "enable_duravip",
    "duravip",
    "duravip_preference",
    "duravip_follow",
    "duravip_forward",
    "forward",
    "duravip_proxy_protocol",
    "proxy_protocol",
    "enable",
    "status",
];
const BINDING_OPTIONS: &[&str] = &[
    "enable_duravip",
    "duravip",
    "duravip_preference",
    "bind_address",
    "binding_group",
];

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// `ipv6_wildcard` tells `[*]:25` from `*:25`, both without an address.
    Listener {
        port: u16,
        ipv6_wildcard: bool,
    },
    Binding {
        name: String,
    },
}

/// One listener or binding.
#[derive(Debug, Clone)]
pub(crate) struct Service<'t> {
    pub(crate) kind: Kind,
    /// `None` for a wildcard listener or a binding without an address.
    pub(crate) address: Option<IpAddr>,
    /// Whether the service itself enables DuraVIP.
    pub(crate) enabled: bool,
    pub(crate) preference: Option<&'t Word>,
    pub(crate) follow: Option<&'t Word>,
    /// Where dvipd relays the listener's connections while this node owns its address.
    pub(crate) forward: Option<(SocketAddr, &'t Word)>,
    /// Whether relayed connections start with a PROXY protocol v2 header.
    pub(crate) proxy_protocol: Option<(bool, &'t Word)>,
    /// Where the service is defined (its address or name).
    pub(crate) at: Span,
}

impl Service<'_> {
    /// How the operator would name it: "listener 192.0.2.1:25", "binding `a`".
    pub(crate) fn describe(&self) -> String {
        match (&self.kind, self.address) {
            (Kind::Listener { port, .. }, Some(IpAddr::V6(a))) => {
                format!("listener [{a}]:{port}")
            }
            (Kind::Listener { port, .. }, Some(a)) => format!("listener {a}:{port}"),
            (
                Kind::Listener {
                    port,
                    ipv6_wildcard: true,
                },
                None,
            ) => format!("listener [*]:{port}"),
            (Kind::Listener { port, .. }, None) => format!("listener *:{port}"),
            (Kind::Binding { name }, _) => format!("binding `{name}`"),
        }
    }

    pub(crate) fn is_binding(&self) -> bool {
        matches!(self.kind, Kind::Binding { .. })
    }

    /// Whether DuraVIP manages the service's address because of the service itself.
    pub(crate) fn marks_duravip(&self) -> bool {
        self.enabled || self.follow.is_some()
    }
}

/// The DuraVIP options of one service, shared by listeners and bindings.
struct DuravipOptions<'t> {
    enabled: bool,
    preference: Option<&'t Word>,
    follow: Option<&'t Word>,
}

fn duravip_options<'t>(
    options: &mut Options<'t>,
    diagnostics: &mut Diagnostics,
) -> DuravipOptions<'t> {
    let enabled = options.boolean(ENABLE, diagnostics).unwrap_or(false);
    let preference = options
        .parsed(PREFERENCE, diagnostics, |t| values::name(t, "node name"))
        .map(|(_, w)| w);
    let follow = options.word(FOLLOW, diagnostics);
    DuravipOptions {
        enabled,
        preference,
        follow,
    }
}

pub(crate) fn collect<'t>(document: &'t [Item], diagnostics: &mut Diagnostics) -> Vec<Service<'t>> {
    let mut services = Vec::new();
    for item in document {
        match item {
            Item::Option(OptionItem {
                key,
                value: Value::List(list),
            }) if key.is("esmtp_listener") => {
                for entry in &list.entries {
                    match entry {
                        Entry::Item {
                            head,
                            attrs,
                            value: None,
                            ..
                        } => {
                            let options =
                                Options::from_options(Owner::at("listener", &head.text), attrs);
                            listener(head, options, Unknown::Warn, &mut services, diagnostics);
                        }
                        Entry::Item {
                            head,
                            value: Some(value),
                            ..
                        } => {
                            diagnostics
                                .error(
                                    Code::Unexpected,
                                    head.span.to(value.span()),
                                    format!("`{} = ...` in a listener list", head.text),
                                )
                                .with_hint(LIST_ENTRY_HINT);
                        }
                        Entry::Group(value) => {
                            diagnostics
                                .error(
                                    Code::Unexpected,
                                    value.span(),
                                    "a bracketed group with no address in a listener list",
                                )
                                .with_hint(LIST_ENTRY_HINT);
                        }
                    }
                }
            }
            Item::Stanza(stanza) if stanza.keyword.is("esmtp_listener") => {
                for listen in stanzas(&stanza.body.items).filter(|s| s.keyword.is("listen")) {
                    let [address] = listen.args.as_slice() else {
                        diagnostics
                            .error(
                                Code::Missing,
                                listen.keyword.span,
                                "a Listen stanza names one address",
                            )
                            .with_hint("write `Listen \"192.0.2.10:25\" { }`");
                        continue;
                    };
                    let mut options =
                        Options::new(Owner::at("Listen", &address.text), &listen.body.items);
                    options.extend(&listen.attrs);
                    listener(
                        address,
                        options,
                        Unknown::WarnIfClose,
                        &mut services,
                        diagnostics,
                    );
                }
            }
            Item::Stanza(stanza) if stanza.keyword.is("binding") => {
                binding(stanza, &mut services, diagnostics);
            }
            Item::Stanza(group) if group.keyword.is("binding_group") => {
                for stanza in stanzas(&group.body.items).filter(|s| s.keyword.is("binding")) {
                    binding(stanza, &mut services, diagnostics);
                }
            }
            _ => {}
        }
    }
    services
}

fn listener<'t>(
    address: &'t Word,
    mut options: Options<'t>,
    policy: Unknown,
    services: &mut Vec<Service<'t>>,
    diagnostics: &mut Diagnostics,
) {
    let d = duravip_options(&mut options, diagnostics);
    let forward = options.parsed(FORWARD, diagnostics, values::backend);
    let proxy_protocol = options.parsed(PROXY_PROTOCOL, diagnostics, values::boolean);
    let mta_proxy_protocol = options.parsed(MTA_PROXY_PROTOCOL, diagnostics, values::boolean);
    let disabled = [
        options.parsed(LISTENER_ENABLE, diagnostics, values::boolean),
        options.parsed(LISTENER_STATUS, diagnostics, values::boolean),
    ]
    .into_iter()
    .flatten()
    .find(|&(on, _)| !on);
    options.finish(LISTENER_OPTIONS, policy, diagnostics);
    let Some(listen) = options::refused(
        diagnostics,
        address,
        values::listen_address(&address.text, LISTENER_PORT_DEFAULT),
    ) else {
        return;
    };
    if let Some((_, word)) = disabled {
        // A listener that is off listens nowhere, in Momentum as here: it marks no address
        // DuraVIP and puts no port on one.
        if d.enabled || d.follow.is_some() || forward.is_some() {
            diagnostics
                .note(
                    Code::Disabled,
                    word.span,
                    format!(
                        "listener {} is disabled, so its DuraVIP options are not used",
                        address.text
                    ),
                )
                .with_hint("enable the listener for DuraVIP to manage its address");
        }
        return;
    }
    if let (Some((true, mta)), Some((true, _))) = (mta_proxy_protocol, proxy_protocol) {
        diagnostics
            .error(
                Code::BadForward,
                mta.span,
                format!(
                    "listener {} expects a PROXY header from a load balancer, and dvipd would put its own before it",
                    address.text
                ),
            )
            .with_hint("dvipd relays a load balancer's header unchanged: remove Duravip_Proxy_Protocol");
    }
    if let (true, Some(follow)) = (d.enabled, d.follow) {
        diagnostics
            .error(Code::FollowAndEnable, follow.span, format!("listener {} both enables DuraVIP and follows `{}`", address.text, follow.text))
            .with_hint("a follower is managed through its binding: remove Enable_Duravip, or remove Duravip_Follow");
    }
    services.push(Service {
        kind: Kind::Listener {
            port: listen.port,
            ipv6_wildcard: listen.ipv6_wildcard,
        },
        address: listen.address,
        enabled: d.enabled,
        preference: d.preference,
        follow: d.follow,
        forward,
        proxy_protocol,
        at: address.span,
    });
}

fn binding<'t>(stanza: &'t Stanza, services: &mut Vec<Service<'t>>, diagnostics: &mut Diagnostics) {
    let [name] = stanza.args.as_slice() else {
        diagnostics
            .error(
                Code::Missing,
                stanza.keyword.span,
                "a Binding stanza needs exactly one name",
            )
            .with_hint("write `Binding \"name\" { Bind_Address = 192.0.2.10 }`");
        return;
    };
    let mut options = Options::new(Owner::named("Binding", &name.text), &stanza.body.items);
    options.extend(&stanza.attrs);
    let d = duravip_options(&mut options, diagnostics);
    let address = options.parsed(&["bind_address"], diagnostics, values::address);
    let _ = options.parsed(&["binding_group"], diagnostics, |t| {
        values::name(t, "binding group")
    });
    options.finish(BINDING_OPTIONS, Unknown::WarnIfClose, diagnostics);
    if let Some(follow) = d.follow {
        diagnostics
            .error(Code::BindingFollows, follow.span, format!("binding `{}` has Duravip_Follow, but only listeners follow", name.text))
            .with_hint("remove Duravip_Follow here; put it on the listener that should go where this binding goes");
    }
    if d.enabled
        && address.is_none()
        && !stanza
            .body
            .items
            .iter()
            .any(|i| matches!(i, Item::Option(o) if o.key.is("bind_address")))
    {
        diagnostics
            .error(
                Code::Missing,
                name.span,
                format!("DuraVIP binding `{}` has no Bind_Address", name.text),
            )
            .with_hint("add `Bind_Address = ADDRESS`: DuraVIP moves that address between nodes");
    }
    services.push(Service {
        kind: Kind::Binding {
            name: name.text.clone(),
        },
        address: address.map(|(a, _)| a),
        enabled: d.enabled,
        preference: d.preference,
        // A binding never follows; the error above says so and the address ignores it.
        follow: None,
        forward: None,
        proxy_protocol: None,
        at: name.span,
    });
}
