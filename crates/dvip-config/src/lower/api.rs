//! The local API's socket: the `Replication_Listener` stanza, where MTAs reach dvipd's
//! replicated counts, caches and throttles.
//!
//! Owns reading that stanza (one `Listen` of a unix socket path, with the socket's mode,
//! user and group). It must not check that the user and group exist on this host: dvipd does
//! when it binds, since a configuration is often checked elsewhere.

use crate::diagnostic::{Code, Diagnostics};
use crate::model::{ApiSocket, API_SOCKET_MODE_DEFAULT};
use crate::options::{self, stanzas, Options, Owner, Unknown};
use crate::tree::{Item, Stanza};
use crate::values::{self, Refusal};

const LISTENER: &str = "Replication_Listener";
/// The stanzas this pass reads.
pub(crate) const STANZAS: &[&str] = &[LISTENER];
const LISTEN_OPTIONS: &[&str] = &["mode", "user", "group"];

pub(crate) fn read(document: &[Item], diagnostics: &mut Diagnostics) -> Option<ApiSocket> {
    let mut seen = false;
    let mut found = None;
    for stanza in stanzas(document) {
        if stanza.keyword.is(LISTENER) {
            if seen {
                diagnostics
                    .error(
                        Code::Duplicate,
                        stanza.keyword.span,
                        "a second Replication_Listener",
                    )
                    .with_hint("dvipd serves its local API on one socket");
                continue;
            }
            seen = true;
            found = read_listener(stanza, diagnostics);
        } else {
            options::near_miss(&stanza.keyword, STANZAS, diagnostics);
        }
    }
    found
}

fn read_listener(stanza: &Stanza, diagnostics: &mut Diagnostics) -> Option<ApiSocket> {
    let owner = Owner::fixed("the Replication_Listener");
    let mut socket = None;
    let mut listens = 0;
    for inner in options::listens(stanza, owner, diagnostics) {
        listens += 1;
        let Some(at) = inner.args.first() else {
            diagnostics
                .error(Code::Missing, inner.keyword.span, "a Listen names a socket")
                .with_hint("write `Listen \"/run/dvip/replicate.sock\" { }`");
            continue;
        };
        if socket.is_some() {
            diagnostics
                .error(
                    Code::Duplicate,
                    at.span,
                    "a second socket for the local API",
                )
                .with_hint("dvipd serves its local API on one socket");
            continue;
        }
        let mut options = Options::new(
            Owner::at("Replication_Listener's Listen", &at.text),
            &inner.body.items,
        );
        let mode = options
            .parsed(&["mode"], diagnostics, socket_mode)
            .map_or(API_SOCKET_MODE_DEFAULT, |(m, _)| m);
        let user = options
            .parsed(&["user"], diagnostics, |t| account(t, "user"))
            .map(|(u, _)| u);
        let group = options
            .parsed(&["group"], diagnostics, |t| account(t, "group"))
            .map(|(g, _)| g);
        options.finish(LISTEN_OPTIONS, Unknown::Warn, diagnostics);
        let Some(path) = options::refused(diagnostics, at, socket_path(&at.text)) else {
            continue;
        };
        socket = Some(ApiSocket {
            path,
            mode,
            user,
            group,
        });
    }
    if listens == 0 {
        diagnostics
            .error(
                Code::Missing,
                stanza.keyword.span,
                "a Replication_Listener with no socket",
            )
            .with_hint("write `Replication_Listener { Listen \"/run/dvip/replicate.sock\" { } }`");
    }
    socket
}

fn bad(message: String, hint: &str) -> Refusal {
    values::refusal(Code::BadSocket, message, hint)
}

fn socket_path(text: &str) -> Result<std::path::PathBuf, Refusal> {
    if text.starts_with('/') && !text.ends_with('/') && !text.contains('\0') {
        Ok(text.into())
    } else {
        Err(bad(
            format!("`{text}` is not an absolute socket path"),
            "write a path such as \"/run/dvip/replicate.sock\"",
        ))
    }
}

/// Permission bits in octal, as chmod writes them.
fn socket_mode(text: &str) -> Result<u32, Refusal> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|m| *m <= 0o777 && !text.is_empty())
        .ok_or_else(|| {
            bad(
                format!("`{text}` is not a socket mode"),
                "write permission bits in octal, such as \"0660\"",
            )
        })
}

/// A user or group name as useradd takes it, or a number.
fn account(text: &str, what: &str) -> Result<String, Refusal> {
    let ok = !text.is_empty()
        && text.len() <= 32
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'))
        && !text.starts_with('-');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(bad(
            format!("`{text}` is not a {what} name"),
            &format!("write the {what}'s name, such as \"mail\", or its number"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_octal_permission_bits() {
        assert_eq!(socket_mode("0660"), Ok(0o660));
        assert_eq!(socket_mode("600"), Ok(0o600));
        assert!(socket_mode("0999").is_err());
        assert!(socket_mode("01777").is_err());
        assert!(account("Debian-exim", "user").is_ok());
        assert!(account("root; rm", "user").is_err());
        assert!(socket_path("run/x.sock").is_err());
    }
}
