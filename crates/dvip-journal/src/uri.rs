//! Journal URIs as Momentum's loggers write them: `cluster:///dir=>subscriber`,
//! `jlog:///dir?subscribers=a,b`. The one parser of them, for the configuration and the tools.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// The two schemes; `cluster` is an alias of `jlog` that also marks the log as one to serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Cluster,
    Jlog,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cluster => "cluster",
            Self::Jlog => "jlog",
        }
    }

    /// The scheme `text` starts with, in any case.
    pub fn of(text: &str) -> Option<Self> {
        // Called on every value of a configuration file: compare in place, no lower-cased copy.
        let has = |prefix: &str| {
            text.get(..prefix.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
        };
        if has("cluster://") {
            Some(Self::Cluster)
        } else if has("jlog://") {
            Some(Self::Jlog)
        } else {
            None
        }
    }
}

/// A parsed journal URI.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JournalUri {
    pub scheme: Scheme,
    /// The journal directory (absolute).
    pub path: PathBuf,
    /// Subscribers created with the journal.
    pub subscribers: Vec<String>,
}

/// Why a URI does not name a journal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    #[error("`{0}` is not a journal URI (cluster:// or jlog://)")]
    NoScheme(String),
    #[error("`{uri}` has a query dvip does not know: `?{query}`")]
    UnknownQuery { uri: String, query: String },
    #[error("`{0}` does not name an absolute journal directory")]
    NotAbsolute(String),
    #[error("`{0}` has an empty or unusable subscriber name")]
    BadSubscriber(String),
}

impl UriError {
    /// What to write instead.
    pub fn hint(&self) -> String {
        match self {
            Self::NoScheme(_) | Self::NotAbsolute(_) => {
                "write `cluster:///var/log/dvip/mainlog.cluster=>master` (three slashes: the path is absolute)".to_owned()
            }
            Self::UnknownQuery { .. } => "the one query a journal URI takes is `?subscribers=NAME,NAME`".to_owned(),
            Self::BadSubscriber(_) => {
                "write `=>master` or `?subscribers=master,backup`: names without spaces, separated by commas".to_owned()
            }
        }
    }
}

impl std::str::FromStr for JournalUri {
    type Err = UriError;

    /// `SCHEME:///absolute/path[=>subscriber]` or `SCHEME:///absolute/path?subscribers=a,b`.
    fn from_str(uri: &str) -> Result<Self, UriError> {
        let scheme = Scheme::of(uri).ok_or_else(|| UriError::NoScheme(uri.to_owned()))?;
        let rest = &uri[scheme.as_str().len() + 3..];
        let (path, subscribers): (&str, Vec<&str>) =
            if let Some((path, subscriber)) = rest.split_once("=>") {
                (path, vec![subscriber])
            } else if let Some((path, query)) = rest.split_once('?') {
                let list = query
                    .split_once('=')
                    .filter(|(key, _)| key.eq_ignore_ascii_case("subscribers"))
                    .map(|(_, list)| list)
                    .ok_or_else(|| UriError::UnknownQuery {
                        uri: uri.to_owned(),
                        query: query.to_owned(),
                    })?;
                (path, list.split(',').collect())
            } else {
                (rest, Vec::new())
            };
        if !path.starts_with('/') || path.len() < 2 || path.contains('?') {
            return Err(UriError::NotAbsolute(uri.to_owned()));
        }
        if subscribers
            .iter()
            .any(|s| s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '?' || c == '='))
        {
            return Err(UriError::BadSubscriber(uri.to_owned()));
        }
        Ok(Self {
            scheme,
            path: PathBuf::from(path),
            subscribers: subscribers.into_iter().map(str::to_owned).collect(),
        })
    }
}

impl fmt::Display for JournalUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.path.display())?;
        match self.subscribers.as_slice() {
            [] => Ok(()),
            [one] => write!(f, "=>{one}"),
            many => write!(f, "?subscribers={}", many.join(",")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn momentums_two_ways_of_naming_subscribers_parse() {
        let one: JournalUri = "cluster:///var/log/dvip/mainlog.cluster=>master"
            .parse()
            .unwrap();
        assert_eq!(one.path, PathBuf::from("/var/log/dvip/mainlog.cluster"));
        assert_eq!(one.subscribers, ["master"]);
        let many: JournalUri = "JLOG:///j?subscribers=a,b".parse().unwrap();
        assert_eq!((many.scheme, many.subscribers.len()), (Scheme::Jlog, 2));
        assert_eq!(many.to_string(), "jlog:///j?subscribers=a,b");
        assert!(matches!(
            "cluster://relative".parse::<JournalUri>(),
            Err(UriError::NotAbsolute(_))
        ));
        assert!(matches!(
            "cluster:///j?x=1".parse::<JournalUri>(),
            Err(UriError::UnknownQuery { .. })
        ));
        assert!(matches!(
            "cluster:///j=>".parse::<JournalUri>(),
            Err(UriError::BadSubscriber(_))
        ));
    }
}
