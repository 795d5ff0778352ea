//! The node's side of one connection, as a state machine: which request is allowed when,
//! how much may be sent, and which acknowledgements are honest.
//!
//! Owns the protocol's rules for the server. It is fed requests and what the edge did (a log
//! opened, records sent, a checkpoint moved) and says what to do next. It must not read a
//! journal or touch a socket: the edge does both and reports back.

use dvip_journal::RecordId;

use crate::{ErrorKind, LogInfo, Reply, Request, PROTOCOL_VERSION};

/// What the edge is to do after a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this reply.
    Reply(Reply),
    /// Open `log`'s journal as `subscriber`, then call [`ServerSession::opened`] (or send an
    /// error of kind `Journal`).
    Open { log: String, subscriber: String },
    /// Move the checkpoint to `through`, then call [`ServerSession::checkpointed`].
    Checkpoint { through: RecordId },
    /// Send what came before, then close the connection.
    Close,
    /// Send the open log's subscriber's backlog.
    Backlog,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Greeting,
    Ready,
    Open {
        log: String,
        credit: u64,
        /// The last record sent, or the checkpoint the log was opened at.
        sent: RecordId,
        /// The last acknowledged record, or that checkpoint.
        acked: RecordId,
    },
}

/// One connection, from the node's side.
#[derive(Clone, Debug)]
pub struct ServerSession {
    node: String,
    logs: Vec<LogInfo>,
    phase: Phase,
}

impl ServerSession {
    /// A connection to `node`, which serves `logs`.
    pub fn new(node: impl Into<String>, logs: Vec<LogInfo>) -> Self {
        Self {
            node: node.into(),
            logs,
            phase: Phase::Greeting,
        }
    }

    /// What to do about `request`.
    pub fn handle(&mut self, request: Request) -> Vec<Step> {
        let error = |kind, message: String| vec![Step::Reply(Reply::Error { kind, message })];
        match (&mut self.phase, request) {
            (Phase::Greeting, Request::Hello { version, .. }) => {
                if version != PROTOCOL_VERSION {
                    return vec![
                        Step::Reply(Reply::Error {
                            kind: ErrorKind::Version,
                            message: format!(
                                "this node speaks version {PROTOCOL_VERSION} of the log protocol, not {version}"
                            ),
                        }),
                        Step::Close,
                    ];
                }
                self.phase = Phase::Ready;
                vec![Step::Reply(Reply::Welcome {
                    version: PROTOCOL_VERSION,
                    node: self.node.clone(),
                })]
            }
            (Phase::Greeting, _) => vec![
                Step::Reply(Reply::Error {
                    kind: ErrorKind::Sequence,
                    message: "say Hello first".into(),
                }),
                Step::Close,
            ],
            (_, Request::Hello { .. }) => {
                error(ErrorKind::Sequence, "Hello was already said".into())
            }
            (_, Request::List) => vec![Step::Reply(Reply::Logs {
                logs: self.logs.clone(),
            })],
            (Phase::Open { .. }, Request::Open { .. }) => error(
                ErrorKind::Sequence,
                "a log is already open on this connection; open another connection".into(),
            ),
            (
                Phase::Ready,
                Request::Open {
                    log,
                    subscriber,
                    credit,
                },
            ) => {
                let Some(info) = self.logs.iter().find(|l| l.name == log) else {
                    return error(
                        ErrorKind::UnknownLog,
                        format!("this node serves no log `{log}`"),
                    );
                };
                if !info.subscribers.contains(&subscriber) {
                    return error(
                        ErrorKind::UnknownSubscriber,
                        format!(
                            "log `{log}` has no subscriber `{subscriber}` (it has: {})",
                            info.subscribers.join(", ")
                        ),
                    );
                }
                self.phase = Phase::Open {
                    log: log.clone(),
                    credit: u64::from(credit),
                    sent: RecordId::START,
                    acked: RecordId::START,
                };
                vec![Step::Open { log, subscriber }]
            }
            (Phase::Ready, Request::More { .. } | Request::Ack { .. } | Request::Backlog) => {
                error(ErrorKind::NotOpen, "open a log first".into())
            }
            (Phase::Open { .. }, Request::Backlog) => vec![Step::Backlog],
            (Phase::Open { credit, .. }, Request::More { records }) => {
                *credit = credit.saturating_add(u64::from(records));
                Vec::new()
            }
            (Phase::Open { sent, acked, .. }, Request::Ack { through }) => {
                if through > *sent || through < *acked {
                    return error(
                        ErrorKind::BadAck,
                        format!(
                            "{through} is not between the last acknowledged record ({acked}) and the last sent ({sent})"
                        ),
                    );
                }
                vec![Step::Checkpoint { through }]
            }
        }
    }

    /// The log asked for is open, after `checkpoint`: the reply to send.
    pub fn opened(&mut self, checkpoint: RecordId) -> Reply {
        let mut log_name = String::new();
        if let Phase::Open {
            log, sent, acked, ..
        } = &mut self.phase
        {
            *sent = checkpoint;
            *acked = checkpoint;
            log_name.clone_from(log);
        }
        Reply::Opened {
            log: log_name,
            checkpoint,
        }
    }

    /// Opening failed: back to no log open.
    pub fn open_failed(&mut self) {
        self.phase = Phase::Ready;
    }

    /// How many records may be sent now.
    pub fn credit(&self) -> u64 {
        match self.phase {
            Phase::Open { credit, .. } => credit,
            _ => 0,
        }
    }

    /// Records up to `last`, `count` of them, are being sent.
    pub fn sending(&mut self, count: u64, last: RecordId) {
        if let Phase::Open { credit, sent, .. } = &mut self.phase {
            *credit = credit.saturating_sub(count);
            *sent = last;
        }
    }

    /// The checkpoint moved to `through`: the reply to send.
    pub fn checkpointed(&mut self, through: RecordId) -> Reply {
        if let Phase::Open { acked, .. } = &mut self.phase {
            *acked = through;
        }
        Reply::Acked { through }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(segment: u32, position: u32) -> RecordId {
        RecordId { segment, position }
    }

    fn session() -> ServerSession {
        ServerSession::new(
            "node1",
            vec![LogInfo {
                name: "maillog".into(),
                subscribers: vec!["master".into()],
            }],
        )
    }

    fn hello(s: &mut ServerSession) {
        let steps = s.handle(Request::Hello {
            version: PROTOCOL_VERSION,
            client: "collector".into(),
        });
        assert!(
            matches!(&steps[..], [Step::Reply(Reply::Welcome { node, .. })] if node == "node1")
        );
    }

    fn kind(steps: &[Step]) -> Option<ErrorKind> {
        steps.iter().find_map(|s| match s {
            Step::Reply(Reply::Error { kind, .. }) => Some(*kind),
            _ => None,
        })
    }

    #[test]
    fn hello_first_in_the_same_version_or_the_connection_closes() {
        let mut s = session();
        let steps = s.handle(Request::List);
        assert_eq!(kind(&steps), Some(ErrorKind::Sequence));
        assert_eq!(steps.last(), Some(&Step::Close));
        let mut s = session();
        let steps = s.handle(Request::Hello {
            version: PROTOCOL_VERSION + 1,
            client: "future".into(),
        });
        assert_eq!(kind(&steps), Some(ErrorKind::Version));
        assert_eq!(steps.last(), Some(&Step::Close));
        let mut s = session();
        hello(&mut s);
        assert_eq!(
            kind(&s.handle(Request::Hello {
                version: PROTOCOL_VERSION,
                client: "again".into()
            })),
            Some(ErrorKind::Sequence)
        );
    }

    #[test]
    fn unknown_logs_and_subscribers_are_named_in_the_error() {
        let mut s = session();
        hello(&mut s);
        let open = |log: &str, subscriber: &str| Request::Open {
            log: log.into(),
            subscriber: subscriber.into(),
            credit: 10,
        };
        assert_eq!(
            kind(&s.handle(open("nolog", "master"))),
            Some(ErrorKind::UnknownLog)
        );
        let steps = s.handle(open("maillog", "nobody"));
        assert_eq!(kind(&steps), Some(ErrorKind::UnknownSubscriber));
        assert!(format!("{steps:?}").contains("it has: master"));
        assert_eq!(
            kind(&s.handle(Request::More { records: 1 })),
            Some(ErrorKind::NotOpen)
        );
    }

    #[test]
    fn credit_bounds_what_is_sent_and_only_honest_acks_move_the_checkpoint() {
        let mut s = session();
        hello(&mut s);
        let steps = s.handle(Request::Open {
            log: "maillog".into(),
            subscriber: "master".into(),
            credit: 3,
        });
        assert_eq!(
            steps,
            [Step::Open {
                log: "maillog".into(),
                subscriber: "master".into()
            }]
        );
        assert_eq!(
            s.opened(id(0, 5)),
            Reply::Opened {
                log: "maillog".into(),
                checkpoint: id(0, 5)
            }
        );
        assert_eq!(s.credit(), 3);
        s.sending(3, id(0, 8));
        assert_eq!(s.credit(), 0);
        assert!(s.handle(Request::More { records: 2 }).is_empty());
        assert_eq!(s.credit(), 2);
        // Not sent yet, and behind the checkpoint: refused.
        assert_eq!(
            kind(&s.handle(Request::Ack { through: id(0, 9) })),
            Some(ErrorKind::BadAck)
        );
        assert_eq!(
            kind(&s.handle(Request::Ack { through: id(0, 4) })),
            Some(ErrorKind::BadAck)
        );
        assert_eq!(
            s.handle(Request::Ack { through: id(0, 7) }),
            [Step::Checkpoint { through: id(0, 7) }]
        );
        assert_eq!(s.checkpointed(id(0, 7)), Reply::Acked { through: id(0, 7) });
        assert_eq!(
            kind(&s.handle(Request::Ack { through: id(0, 6) })),
            Some(ErrorKind::BadAck)
        );
        assert_eq!(
            kind(&s.handle(Request::Open {
                log: "maillog".into(),
                subscriber: "master".into(),
                credit: 1
            })),
            Some(ErrorKind::Sequence)
        );
    }
}
