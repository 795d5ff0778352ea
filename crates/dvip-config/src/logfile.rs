//! The aggregated files' names: `logfile` templates such as
//! `/var/log/dvip/%Y/%m/%d/%{l}/%{n}`.
//!
//! Owns parsing a template and naming the file a record goes to, from the record's time (UTC),
//! its log key and its node. It is pure: it must not open files.

use std::path::PathBuf;

use dvip_journal::Timestamp;

/// A piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// A strftime conversion, by its letter.
    Time(char),
    Log,
    Node,
}

/// The strftime letters understood: year, two-digit year, month, day, hour, minute, second,
/// day of the year.
const TIME_LETTERS: &[char] = &['Y', 'y', 'm', 'd', 'H', 'M', 'S', 'j'];

/// A parsed `logfile`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    text: String,
    pieces: Vec<Piece>,
}

/// Why a template was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    #[error(
        "`%{0}` is not an escape dvip knows (it knows %Y %y %m %d %H %M %S %j %% %{{l}} %{{n}})"
    )]
    Unknown(String),
    #[error("the template must be an absolute path")]
    NotAbsolute,
    #[error(
        "the template must contain %{{n}} and %{{l}}: each node's log needs files of its own, \
         so that a crash is repaired without touching another's lines"
    )]
    NotPerStream,
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        if !text.starts_with('/') {
            return Err(TemplateError::NotAbsolute);
        }
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                literal.push(c);
                continue;
            }
            let piece = match chars.next() {
                Some('%') => {
                    literal.push('%');
                    continue;
                }
                Some('{') => {
                    let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    match name.as_str() {
                        "l" => Piece::Log,
                        "n" => Piece::Node,
                        other => return Err(TemplateError::Unknown(format!("{{{other}}}"))),
                    }
                }
                Some(letter) if TIME_LETTERS.contains(&letter) => Piece::Time(letter),
                Some(other) => return Err(TemplateError::Unknown(other.to_string())),
                None => return Err(TemplateError::Unknown(String::new())),
            };
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(piece);
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        if !pieces.contains(&Piece::Log) || !pieces.contains(&Piece::Node) {
            return Err(TemplateError::NotPerStream);
        }
        Ok(Self {
            text: text.to_owned(),
            pieces,
        })
    }

    /// The template as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The file a record of `log` from `node`, written at `time`, goes to.
    pub fn render(&self, time: Timestamp, log: &str, node: &str) -> PathBuf {
        let at = time::OffsetDateTime::from_unix_timestamp(i64::from(time.seconds))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Log => out.push_str(&safe(log)),
                Piece::Node => out.push_str(&safe(node)),
                Piece::Time(letter) => {
                    let text = match letter {
                        'Y' => format!("{:04}", at.year()),
                        'y' => format!("{:02}", at.year().rem_euclid(100)),
                        'm' => format!("{:02}", u8::from(at.month())),
                        'd' => format!("{:02}", at.day()),
                        'H' => format!("{:02}", at.hour()),
                        'M' => format!("{:02}", at.minute()),
                        'S' => format!("{:02}", at.second()),
                        _ => format!("{:03}", at.ordinal()),
                    };
                    out.push_str(&text);
                }
            }
        }
        PathBuf::from(out)
    }
}

/// A name as one path component: a `/` or a leading `.` cannot climb out of the tree.
fn safe(name: &str) -> String {
    let replaced: String = name
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    if replaced.starts_with('.') || replaced.is_empty() {
        format!("_{replaced}")
    } else {
        replaced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_logs_and_nodes_fill_the_template() {
        let t = Template::parse("/var/log/dvip/%Y/%m/%d/%{l}/%{n}-%H%M%S.%j.%y%%").unwrap();
        // 2026-12-06T02:05:09Z
        let at = Timestamp {
            seconds: 1_796_522_709,
            micros: 0,
        };
        assert_eq!(
            t.render(at, "maillog", "node1"),
            PathBuf::from("/var/log/dvip/2026/12/06/maillog/node1-020509.340.26%")
        );
    }

    #[test]
    fn names_cannot_climb_out_and_bad_templates_say_why() {
        let t = Template::parse("/l/%{l}/%{n}").unwrap();
        let at = Timestamp {
            seconds: 0,
            micros: 0,
        };
        assert_eq!(t.render(at, "../x", ".."), PathBuf::from("/l/_.._x/_.."));
        assert_eq!(
            Template::parse("/l/%{l}/%q/%{n}"),
            Err(TemplateError::Unknown("q".into()))
        );
        assert_eq!(
            Template::parse("/l/%{s}/%{l}/%{n}"),
            Err(TemplateError::Unknown("{s}".into()))
        );
        assert_eq!(
            Template::parse("/l/%Y/%{l}"),
            Err(TemplateError::NotPerStream)
        );
        assert_eq!(
            Template::parse("l/%{l}/%{n}"),
            Err(TemplateError::NotAbsolute)
        );
    }
}
