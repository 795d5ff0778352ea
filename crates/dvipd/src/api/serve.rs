//! The local API's edge: a unix socket that speaks RESP2, so that redis-cli and any Redis
//! client library reach the replicated counts, caches and throttles.
//!
//! Owns the socket (its file, owner and mode), framing commands and replies, and the bounds
//! on what a client may send. It must not answer a command itself: the daemon's loop does,
//! one command at a time, through [`Asked`].

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;
use std::time::Duration;

use dvip_config::ApiSocket;
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::encode;
use redis_protocol::resp2::types::{OwnedFrame, Resp2Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::command::{ApiCommand, ApiReply};

/// The longest command a client may send, in bytes: the longest key and value with room
/// for the command's name and framing.
pub const COMMAND_MAX: usize = dvip_replicate::KEY_MAX + dvip_replicate::VALUE_MAX + 4096;

/// The most arguments one command may carry.
pub const ARGUMENTS_MAX: usize = 256;

/// A command for the daemon and where its reply goes.
pub type Asked = (ApiCommand, oneshot::Sender<ApiReply>);

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("{0}: something other than a socket is there; move it away or configure another path")]
    NotASocket(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the socket's user `{0}` does not exist on this host")]
    NoUser(String),
    #[error("the socket's group `{0}` does not exist on this host")]
    NoGroup(String),
}

/// Binds the socket: a stale socket file is replaced, then the socket gets its owner and
/// mode before anyone is served.
pub fn bind(socket: &ApiSocket) -> Result<UnixListener, BindError> {
    let path = &socket.path;
    let io_error = |source| BindError::Io {
        path: path.clone(),
        source,
    };
    let uid = socket.user.as_deref().map(user_id).transpose()?;
    let gid = socket.group.as_deref().map(group_id).transpose()?;
    match std::fs::symlink_metadata(path) {
        Ok(found) if found.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(io_error)?;
        }
        Ok(_) => return Err(BindError::NotASocket(path.clone())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(e)),
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_error)?;
    }
    let listener = UnixListener::bind(path).map_err(io_error)?;
    if uid.is_some() || gid.is_some() {
        nix::unistd::chown(path.as_path(), uid, gid).map_err(|e| io_error(e.into()))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(socket.mode))
        .map_err(io_error)?;
    Ok(listener)
}

fn user_id(name: &str) -> Result<nix::unistd::Uid, BindError> {
    if let Ok(n) = name.parse() {
        return Ok(nix::unistd::Uid::from_raw(n));
    }
    match nix::unistd::User::from_name(name) {
        Ok(Some(user)) => Ok(user.uid),
        _ => Err(BindError::NoUser(name.to_owned())),
    }
}

fn group_id(name: &str) -> Result<nix::unistd::Gid, BindError> {
    if let Ok(n) = name.parse() {
        return Ok(nix::unistd::Gid::from_raw(n));
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid),
        _ => Err(BindError::NoGroup(name.to_owned())),
    }
}

/// Serves clients until the daemon stops; each connection on a task of its own.
pub async fn serve(listener: UnixListener, daemon: mpsc::Sender<Asked>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                debug!("API client connected");
                tokio::spawn(connection(stream, daemon.clone()));
            }
            Err(e) => {
                warn!("API listener: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// What one read of the buffer found.
enum Framed {
    /// A command's arguments, and how many bytes it took.
    Command(Vec<String>, usize),
    /// Not a whole command yet.
    Partial,
    /// Not RESP, or past a bound: the client is told and the connection closed.
    Broken(String),
}

fn next_command(buffer: &[u8]) -> Framed {
    match decode(buffer) {
        Ok(Some((frame, used))) => match arguments(frame) {
            Ok(args) => Framed::Command(args, used),
            Err(why) => Framed::Broken(why),
        },
        Ok(None) if buffer.len() > COMMAND_MAX => {
            Framed::Broken(format!("a command is over {COMMAND_MAX} bytes"))
        }
        Ok(None) => Framed::Partial,
        Err(e) => Framed::Broken(format!("not RESP: {e}")),
    }
}

fn arguments(frame: OwnedFrame) -> Result<Vec<String>, String> {
    let OwnedFrame::Array(items) = frame else {
        return Err("a command is an array of bulk strings".to_owned());
    };
    if items.len() > ARGUMENTS_MAX {
        return Err(format!("a command has at most {ARGUMENTS_MAX} arguments"));
    }
    items
        .into_iter()
        .map(|item| match item {
            OwnedFrame::BulkString(bytes) | OwnedFrame::SimpleString(bytes) => {
                String::from_utf8(bytes).map_err(|_| "keys and values are UTF-8 text".to_owned())
            }
            _ => Err("a command is an array of bulk strings".to_owned()),
        })
        .collect()
}

fn frame(reply: ApiReply) -> OwnedFrame {
    match reply {
        ApiReply::Status(text) => OwnedFrame::SimpleString(text.as_bytes().to_vec()),
        ApiReply::Integer(n) => OwnedFrame::Integer(n),
        ApiReply::Bulk(Some(text)) => OwnedFrame::BulkString(text.into_bytes()),
        ApiReply::Bulk(None) => OwnedFrame::Null,
        ApiReply::Array(items) => OwnedFrame::Array(items.into_iter().map(frame).collect()),
        // A reply is one line: a newline in an error would break the framing.
        ApiReply::Error(text) => {
            OwnedFrame::Error(format!("ERR {}", text.replace(['\r', '\n'], " ")))
        }
    }
}

fn encoded(reply: ApiReply) -> Vec<u8> {
    let frame = frame(reply);
    let mut bytes = vec![0; frame.encode_len(false)];
    let used = encode(&mut bytes, &frame, false).expect("the buffer is sized by encode_len");
    bytes.truncate(used);
    bytes
}

async fn connection(mut stream: UnixStream, daemon: mpsc::Sender<Asked>) {
    let mut buffer = Vec::new();
    let mut chunk = vec![0; 16 * 1024];
    loop {
        loop {
            let (args, used) = match next_command(&buffer) {
                Framed::Command(args, used) => (args, used),
                Framed::Partial => break,
                Framed::Broken(why) => {
                    warn!("API client: {why}; closing");
                    let _ = stream.write_all(&encoded(ApiReply::Error(why))).await;
                    return;
                }
            };
            buffer.drain(..used);
            let (reply, quit) = match ApiCommand::parse(&args) {
                Ok(ApiCommand::Quit) => (ApiReply::Status("OK"), true),
                Ok(command) => {
                    let (tell, answer) = oneshot::channel();
                    if daemon.send((command, tell)).await.is_err() {
                        return;
                    }
                    match answer.await {
                        Ok(reply) => (reply, false),
                        Err(_) => return,
                    }
                }
                Err(e) => (ApiReply::Error(e.to_string()), false),
            };
            if stream.write_all(&encoded(reply)).await.is_err() || quit {
                return;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_framed_one_at_a_time_and_wait_for_their_last_byte() {
        let two = b"*2\r\n$3\r\nGET\r\n$5\r\nc:key\r\n*1\r\n$4\r\nPING\r\n";
        let Framed::Command(args, used) = next_command(two) else {
            panic!("a command");
        };
        assert_eq!(args, ["GET", "c:key"]);
        let Framed::Command(args, _) = next_command(&two[used..]) else {
            panic!("a second command");
        };
        assert_eq!(args, ["PING"]);
        assert!(matches!(next_command(&two[..used - 1]), Framed::Partial));
    }

    #[test]
    fn what_is_not_a_command_or_too_long_breaks_the_connection_with_a_reason() {
        assert!(matches!(next_command(b":12\r\n"), Framed::Broken(_)));
        assert!(matches!(
            next_command(b"*1\r\n$2\r\n\xff\xfe\r\n"),
            Framed::Broken(_)
        ));
        let mut long = format!("*1\r\n${}\r\n", COMMAND_MAX * 2).into_bytes();
        long.resize(COMMAND_MAX + 1, b'x');
        let Framed::Broken(why) = next_command(&long) else {
            panic!("over the bound");
        };
        assert!(why.contains("over"), "{why}");
        let many = format!(
            "*{}\r\n{}",
            ARGUMENTS_MAX + 1,
            "$1\r\na\r\n".repeat(ARGUMENTS_MAX + 1)
        );
        assert!(matches!(next_command(many.as_bytes()), Framed::Broken(_)));
    }

    #[test]
    fn replies_are_resp() {
        assert_eq!(encoded(ApiReply::Status("OK")), b"+OK\r\n");
        assert_eq!(encoded(ApiReply::Integer(-2)), b":-2\r\n");
        assert_eq!(encoded(ApiReply::Bulk(None)), b"$-1\r\n");
        assert_eq!(
            encoded(ApiReply::Array(vec![ApiReply::Bulk(Some("v".into()))])),
            b"*1\r\n$1\r\nv\r\n"
        );
        assert_eq!(
            encoded(ApiReply::Error("two\nlines".into())),
            b"-ERR two lines\r\n"
        );
    }
}
