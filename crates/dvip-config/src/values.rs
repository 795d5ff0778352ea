//! Scalar values: yes/no, ports, addresses, networks, interface names, durations.
//!
//! Owns the spelling of each kind of value and the reason a spelling is refused. It must not
//! know which option a value belongs to; callers attach the location.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;

use crate::diagnostic::Code;

/// Why a value was refused, and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) code: Code,
    pub(crate) message: String,
    pub(crate) hint: String,
}

/// A refusal made by a pass that reads its own kind of value.
pub(crate) fn refusal(code: Code, message: String, hint: impl Into<String>) -> Refusal {
    refuse(code, message, hint)
}

fn refuse(code: Code, message: String, hint: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message,
        hint: hint.into(),
    }
}

/// The spellings of yes and no, quoted or not, in any case.
pub(crate) fn boolean(text: &str) -> Result<bool, Refusal> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "enabled" | "enable" | "1" => Ok(true),
        "false" | "no" | "off" | "disabled" | "disable" | "0" => Ok(false),
        _ => Err(refuse(
            Code::WrongType,
            format!("`{text}` is not a yes/no value"),
            "write true or false (yes/no, on/off and enabled/disabled also work)",
        )),
    }
}

/// A whole number within `range`, of `what` (for the message).
pub(crate) fn count(
    text: &str,
    range: std::ops::RangeInclusive<u32>,
    what: &str,
) -> Result<u32, Refusal> {
    match text.parse::<u32>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(refuse(
            Code::WrongType,
            format!(
                "`{text}` is not a number of {what} from {} to {}",
                range.start(),
                range.end()
            ),
            format!(
                "write a whole number from {} to {}",
                range.start(),
                range.end()
            ),
        )),
    }
}

pub(crate) fn port(text: &str) -> Result<u16, Refusal> {
    match text.parse::<u32>() {
        Ok(n @ 1..=65535) => Ok(n as u16),
        _ => Err(refuse(
            Code::BadPort,
            format!("`{text}` is not a port"),
            "a port is a number from 1 to 65535",
        )),
    }
}

pub(crate) fn address(text: &str) -> Result<IpAddr, Refusal> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse().map_err(|_| {
        refuse(
            Code::BadAddress,
            format!("`{text}` is not an IP address"),
            "write an IPv4 address such as 192.0.2.10 or an IPv6 address such as 2001:db8::10",
        )
    })
}

/// A network: `ADDR/LEN` with no host bits set, or a bare address meaning that one host.
pub(crate) fn network(text: &str) -> Result<IpNet, Refusal> {
    if !text.contains('/') {
        return address(text).map(IpNet::from).map_err(|r| Refusal {
            code: Code::BadCidr,
            ..r
        });
    }
    let net: IpNet = text.parse().map_err(|_| {
        refuse(
            Code::BadCidr,
            format!("`{text}` is not a network in CIDR notation"),
            "write ADDRESS/PREFIX-LENGTH, such as 192.0.2.0/24 or 2001:db8::/64",
        )
    })?;
    if net.trunc() != net {
        return Err(refuse(
            Code::BadCidr,
            format!("`{text}` has host bits set"),
            format!("did you mean `{}`?", net.trunc()),
        ));
    }
    Ok(net)
}

/// A prefix length for an address of this family (32 bits for IPv4, 128 for IPv6).
pub(crate) fn cidrmask(text: &str, ipv6: bool) -> Result<u8, Refusal> {
    let max = if ipv6 { 128 } else { 32 };
    match text.parse::<u8>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(refuse(
            Code::BadCidrmask,
            format!("cidrmask `{text}` does not fit an {} address", if ipv6 { "IPv6" } else { "IPv4" }),
            format!("a cidrmask is a prefix length from 1 to {max}; {max} (one host) is almost always right"),
        )),
    }
}

/// A Linux interface name: 1 to 15 bytes, no `/`, no whitespace, not `.` or `..`.
pub(crate) fn interface(text: &str) -> Result<String, Refusal> {
    let ok = !text.is_empty()
        && text.len() <= 15
        && text != "."
        && text != ".."
        && !text
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(text.to_owned())
    } else {
        Err(refuse(
            Code::BadInterface,
            format!("`{text}` is not a network interface name"),
            "an interface name has 1 to 15 characters with no `/`, `:` or spaces, such as eth0 or bond0.12",
        ))
    }
}

/// A node or group name: not empty, no whitespace or control characters, at most 127 bytes
/// (the longest group name corosync takes).
pub(crate) fn name(text: &str, what: &str) -> Result<String, Refusal> {
    if text.is_empty()
        || text.len() > 127
        || text.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        Err(refuse(
            Code::BadName,
            format!("`{text}` is not a usable {what}"),
            "a name has 1 to 127 characters and no spaces",
        ))
    } else {
        Ok(text.to_owned())
    }
}

/// `2` (seconds), `1.5s` or `500ms`.
pub(crate) fn duration(text: &str) -> Result<Duration, Refusal> {
    let lower = text.to_ascii_lowercase();
    let (number, scale) = if let Some(n) = lower.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = lower.strip_suffix('s') {
        (n, 1.0)
    } else {
        (lower.as_str(), 1.0)
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 && n * scale <= 86_400.0 => {
            Ok(Duration::from_secs_f64(n * scale))
        }
        _ => Err(refuse(
            Code::BadDuration,
            format!("`{text}` is not a duration"),
            "write seconds (`2`, `1.5s`) or milliseconds (`500ms`), at most a day",
        )),
    }
}

/// A duration of at least `least`: a deadline so short it would fire on a healthy cluster.
pub(crate) fn deadline(text: &str, least: Duration) -> Result<Duration, Refusal> {
    let d = duration(text)?;
    if d < least {
        return Err(refuse(
            Code::BadDuration,
            format!("`{text}` is shorter than {} ms", least.as_millis()),
            format!(
                "a deadline below {} ms fires on a healthy cluster; write a longer one",
                least.as_millis()
            ),
        ));
    }
    Ok(d)
}

/// Where a service listens: an address (or `*` for every address) and a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ListenAddress {
    /// The address, or `None` for every address: `*`, nothing before the port, or 0.0.0.0;
    /// or, with `ipv6_wildcard`, `[*]` or `[::]`.
    pub address: Option<IpAddr>,
    /// The port.
    pub port: u16,
    /// For a wildcard, whether it is IPv6's (`[*]:25`) rather than IPv4's (`*:25`).
    pub ipv6_wildcard: bool,
}

impl std::fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.address {
            None if self.ipv6_wildcard => write!(f, "[*]:{}", self.port),
            None => write!(f, "*:{}", self.port),
            Some(IpAddr::V6(a)) => write!(f, "[{a}]:{}", self.port),
            Some(IpAddr::V4(a)) => write!(f, "{a}:{}", self.port),
        }
    }
}

/// `ADDRESS[:PORT[,BACKLOG[~CONCURRENCY]]]`, where ADDRESS may be `*` or nothing (every
/// address), `[*]` (every IPv6 address), an IPv4 address, a bracketed IPv6 address or a bare
/// IPv6 address (then without a port). The port defaults to `default_port`.
pub(crate) fn listen_address(text: &str, default_port: u16) -> Result<ListenAddress, Refusal> {
    let bad = |hint: &str| {
        refuse(
            Code::BadAddress,
            format!("`{text}` is not ADDRESS[:PORT]"),
            hint,
        )
    };
    let host_port = match text.split_once(',') {
        Some((hp, tuning)) => {
            // The listen backlog, then optionally the 2.x concurrency after `~`.
            let (backlog, concurrency) = match tuning.split_once('~') {
                Some((b, c)) => (b, Some(c)),
                None => (tuning, None),
            };
            if backlog.parse::<u32>().is_err()
                || concurrency.is_some_and(|c| c.parse::<u32>().is_err())
            {
                return Err(bad(
                    "after `,` come the listen backlog and, after `~`, the concurrency: `*:587,200~20`",
                ));
            }
            hp
        }
        None => text,
    };
    let listen = |host: &str, port: u16| -> Result<ListenAddress, Refusal> {
        let any = |ipv6_wildcard| ListenAddress {
            address: None,
            port,
            ipv6_wildcard,
        };
        match host {
            "" | "*" => return Ok(any(false)),
            "[*]" => return Ok(any(true)),
            _ => {}
        }
        let addr = address(host)?;
        if addr.is_unspecified() {
            return Ok(any(addr.is_ipv6()));
        }
        Ok(ListenAddress {
            address: Some(addr),
            port,
            ipv6_wildcard: false,
        })
    };
    // A bare IPv6 address (several colons, no brackets) or a bracketed one alone carries no port.
    let bracketed_alone = host_port.starts_with('[') && host_port.ends_with(']');
    if bracketed_alone || (host_port.matches(':').count() > 1 && !host_port.starts_with('[')) {
        return listen(host_port, default_port);
    }
    let (host, port_text) = match host_port.rsplit_once(':') {
        Some((host, _)) if !host.ends_with(']') && host.starts_with('[') => {
            return Err(bad(
                "write an IPv6 address with a port as `[2001:db8::10]:25`",
            ))
        }
        Some((host, port)) => (host, Some(port)),
        None => (host_port, None),
    };
    let port_number = match port_text {
        Some(p) => port(p)?,
        None => default_port,
    };
    if host.is_empty() && port_text.is_none() {
        return Err(bad("write an address, `*` or `:PORT` for every address"));
    }
    listen(host, port_number)
}

/// The program run on acquire and release: an absolute path, so it does not depend on the
/// daemon's working directory or `PATH`.
pub(crate) fn hook(text: &str) -> Result<String, Refusal> {
    if text.starts_with('/') && !text.contains('\0') {
        Ok(text.to_owned())
    } else {
        Err(refuse(
            Code::BadHook,
            format!("`{text}` is not an absolute path"),
            "write the program's full path, such as `/usr/local/libexec/dvip-hook`",
        ))
    }
}

/// `ADDRESS:PORT` of a backend dvipd relays connections to: a concrete address (no wildcard)
/// and an explicit port.
pub(crate) fn backend(text: &str) -> Result<std::net::SocketAddr, Refusal> {
    let hint = "write where the local service listens, such as `127.0.0.1:2525` or `[::1]:2525`";
    let has_port = text.starts_with('[') && text.contains("]:")
        || (!text.starts_with('[') && text.matches(':').count() == 1);
    if !has_port {
        return Err(refuse(
            Code::BadForward,
            format!("`{text}` is not ADDRESS:PORT with a port"),
            hint,
        ));
    }
    let listen = listen_address(text, 0).map_err(|r| refuse(Code::BadForward, r.message, hint))?;
    match listen.address {
        Some(address) => Ok(std::net::SocketAddr::new(address, listen.port)),
        None => Err(refuse(
            Code::BadForward,
            format!("`{text}` is a wildcard; a backend is one address"),
            hint,
        )),
    }
}

/// Where the syslog listener receives: an absolute path (a unix datagram socket) or a
/// loopback `ADDRESS:PORT` (UDP). Other hosts' logs reach a node through its own syslog
/// daemon, never through an open UDP port.
pub(crate) fn syslog_listen(text: &str) -> Result<crate::model::SyslogListen, Refusal> {
    let hint = "write a socket path such as \"/run/dvip/syslog\" or a loopback address such as \"127.0.0.1:5514\"";
    if text.starts_with('/') {
        return if text.contains('\0') || text.ends_with('/') {
            Err(refuse(
                Code::SyslogListen,
                format!("`{text}` is not a socket path"),
                hint,
            ))
        } else {
            Ok(crate::model::SyslogListen::Unix(text.into()))
        };
    }
    let listen =
        listen_address(text, 0).map_err(|r| refuse(Code::SyslogListen, r.message, hint))?;
    match listen.address {
        _ if listen.port == 0 => Err(refuse(
            Code::SyslogListen,
            format!("`{text}` names no port"),
            hint,
        )),
        Some(address) if address.is_loopback() => Ok(crate::model::SyslogListen::Udp(
            std::net::SocketAddr::new(address, listen.port),
        )),
        other => Err(refuse(
            Code::SyslogListen,
            format!(
                "dvipd takes syslog over UDP on loopback only, not on {}",
                other.map_or_else(|| "every address".to_owned(), |a| a.to_string())
            ),
            "let the host's syslog daemon receive from the network and forward to dvipd on 127.0.0.1 or ::1",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_address_spellings() {
        let la = |t| listen_address(t, 25).map(|l| l.to_string());
        assert_eq!(la("192.0.2.1:25,200").unwrap(), "192.0.2.1:25");
        assert_eq!(la("192.0.2.1").unwrap(), "192.0.2.1:25");
        assert_eq!(la("*:4802").unwrap(), "*:4802");
        assert_eq!(la("0.0.0.0:587").unwrap(), "*:587");
        assert_eq!(la("[2001:db8::1]:2525").unwrap(), "[2001:db8::1]:2525");
        assert_eq!(la("2001:db8::1").unwrap(), "[2001:db8::1]:25");
        assert_eq!(la("[2001:db8::1]").unwrap(), "[2001:db8::1]:25");
        assert_eq!(la("[2001:db8::1:25").unwrap_err().code, Code::BadAddress);
        assert_eq!(la("192.0.2.1:0").unwrap_err().code, Code::BadPort);
        assert_eq!(la("192.0.2.1:25,x").unwrap_err().code, Code::BadAddress);
        assert_eq!(
            la("mail.example.com:25").unwrap_err().code,
            Code::BadAddress
        );
        assert_eq!(la(":25").unwrap(), "*:25");
        assert_eq!(la("[*]:25").unwrap(), "[*]:25");
        assert_eq!(la("[::]:25").unwrap(), "[*]:25");
        assert_eq!(la("*:587,200~20").unwrap(), "*:587");
        assert_eq!(la("[2001:db8::10]:25,200~20").unwrap(), "[2001:db8::10]:25");
        assert_eq!(la("*:587,200~x").unwrap_err().code, Code::BadAddress);
        assert_eq!(la("").unwrap_err().code, Code::BadAddress);
    }

    #[test]
    fn backends_need_an_address_and_a_port() {
        assert_eq!(
            backend("127.0.0.1:2525").unwrap().to_string(),
            "127.0.0.1:2525"
        );
        assert_eq!(backend("[::1]:2525").unwrap().to_string(), "[::1]:2525");
        for bad in [
            "127.0.0.1",
            "*:2525",
            "0.0.0.0:25",
            "::1",
            "[::1]",
            "localhost:25",
            "127.0.0.1:0",
        ] {
            assert_eq!(backend(bad).unwrap_err().code, Code::BadForward, "{bad}");
        }
    }

    #[test]
    fn networks_refuse_host_bits_and_suggest_the_network() {
        let r = network("192.0.2.1/24").unwrap_err();
        assert_eq!(r.code, Code::BadCidr);
        assert!(r.hint.contains("192.0.2.0/24"), "{}", r.hint);
        assert_eq!(network("192.0.2.7").unwrap().to_string(), "192.0.2.7/32");
        assert_eq!(network("2001:db8::/64").unwrap().prefix_len(), 64);
    }

    #[test]
    fn durations_take_seconds_and_milliseconds() {
        assert_eq!(duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(duration("soon").is_err());
        assert!(duration("-1").is_err());
    }

    #[test]
    fn booleans_take_every_spelling_and_nothing_else() {
        for yes in ["true", "YES", "On", "enabled"] {
            assert_eq!(boolean(yes), Ok(true));
        }
        for no in ["false", "no", "OFF", "Disabled"] {
            assert_eq!(boolean(no), Ok(false));
        }
        assert_eq!(boolean("maybe").unwrap_err().code, Code::WrongType);
    }
}
