//! Reading the options of one stanza: each taken once, by name, in any case.
//!
//! Owns duplicate detection, value-kind errors and the "unknown option, did you mean"
//! warning. It must not know which stanza it reads; callers pass the names they know.

use std::time::Duration;

use crate::diagnostic::{Code, Diagnostics};
use crate::tree::{Item, OptionItem, Stanza, Value, Word};
use crate::values::{self, Refusal};

/// Whether options a stanza does not know draw a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unknown {
    /// Every unknown option is reported: the stanza belongs to dvip alone.
    Warn,
    /// Only names close to one dvip knows are reported: the stanza also holds options of the
    /// MTA (a Binding, a Listen) which are none of dvip's business.
    WarnIfClose,
}

/// What a set of options belongs to, for messages: "the cluster stanza", "Binding `a`".
///
/// Formatted only when a message needs it: a large config has tens of thousands of stanzas
/// and almost none of them draw a diagnostic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner<'t> {
    what: &'static str,
    name: Option<&'t str>,
    quoted: bool,
}

impl<'t> Owner<'t> {
    /// A fixed description: "the cluster stanza".
    pub(crate) fn fixed(what: &'static str) -> Self {
        Self {
            what,
            name: None,
            quoted: false,
        }
    }

    /// A stanza with a name, quoted in messages: "Binding `a`".
    pub(crate) fn named(what: &'static str, name: &'t str) -> Self {
        Self {
            what,
            name: Some(name),
            quoted: true,
        }
    }

    /// A stanza with an address or network: "listener 192.0.2.1:25".
    pub(crate) fn at(what: &'static str, place: &'t str) -> Self {
        Self {
            what,
            name: Some(place),
            quoted: false,
        }
    }
}

impl std::fmt::Display for Owner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.name, self.quoted) {
            (None, _) => f.write_str(self.what),
            (Some(name), true) => write!(f, "{} `{name}`", self.what),
            (Some(name), false) => write!(f, "{} {name}", self.what),
        }
    }
}

pub(crate) struct Options<'t> {
    owner: Owner<'t>,
    options: Vec<&'t OptionItem>,
    taken: Vec<bool>,
}

impl<'t> Options<'t> {
    pub(crate) fn new(owner: Owner<'t>, items: &'t [Item]) -> Self {
        Self::from_options(
            owner,
            items.iter().filter_map(|i| match i {
                Item::Option(o) => Some(o),
                Item::Stanza(_) | Item::Bare(_) => None,
            }),
        )
    }

    pub(crate) fn from_options(
        owner: Owner<'t>,
        options: impl IntoIterator<Item = &'t OptionItem>,
    ) -> Self {
        let options: Vec<_> = options.into_iter().collect();
        let taken = vec![false; options.len()];
        Self {
            owner,
            options,
            taken,
        }
    }

    /// Adds more options (e.g. `< >` attributes next to a `{ }` body).
    pub(crate) fn extend(&mut self, more: impl IntoIterator<Item = &'t OptionItem>) {
        for option in more {
            self.options.push(option);
            self.taken.push(false);
        }
    }

    /// The option called `name` (or any of `aliases`); a second one is an error.
    pub(crate) fn take(
        &mut self,
        names: &[&str],
        diagnostics: &mut Diagnostics,
    ) -> Option<&'t OptionItem> {
        let mut found: Option<&'t OptionItem> = None;
        for (i, option) in self.options.iter().enumerate() {
            if names.iter().any(|n| option.key.is(n)) {
                self.taken[i] = true;
                if let Some(first) = found {
                    diagnostics
                        .error(
                            Code::Duplicate,
                            option.key.span,
                            format!("`{}` is set twice in {}", option.key.text, self.owner),
                        )
                        .with_hint(format!(
                            "remove one; the other `{}` is earlier in the same stanza",
                            first.key.text
                        ));
                }
                found = Some(option);
            }
        }
        found
    }

    /// Every option called `name`, for options that may repeat.
    pub(crate) fn take_all(&mut self, names: &[&str]) -> Vec<&'t OptionItem> {
        let mut all = Vec::new();
        for (i, option) in self.options.iter().enumerate() {
            if names.iter().any(|n| option.key.is(n)) {
                self.taken[i] = true;
                all.push(*option);
            }
        }
        all
    }

    /// A single-word value.
    pub(crate) fn word(
        &mut self,
        names: &[&str],
        diagnostics: &mut Diagnostics,
    ) -> Option<&'t Word> {
        let option = self.take(names, diagnostics)?;
        match &option.value {
            Value::Word(w) => Some(w),
            other => {
                diagnostics
                    .error(
                        Code::WrongType,
                        other.span(),
                        format!("`{}` takes a single value, not a block", option.key.text),
                    )
                    .with_hint(format!("write `{} = VALUE`", option.key.text));
                None
            }
        }
    }

    /// A value parsed by `parse`; a refusal becomes an error at the value.
    pub(crate) fn parsed<T>(
        &mut self,
        names: &[&str],
        diagnostics: &mut Diagnostics,
        parse: impl FnOnce(&str) -> Result<T, Refusal>,
    ) -> Option<(T, &'t Word)> {
        let word = self.word(names, diagnostics)?;
        refused(diagnostics, word, parse(&word.text)).map(|v| (v, word))
    }

    pub(crate) fn boolean(
        &mut self,
        names: &[&str],
        diagnostics: &mut Diagnostics,
    ) -> Option<bool> {
        self.parsed(names, diagnostics, values::boolean)
            .map(|(v, _)| v)
    }

    pub(crate) fn duration(
        &mut self,
        names: &[&str],
        diagnostics: &mut Diagnostics,
    ) -> Option<Duration> {
        self.parsed(names, diagnostics, values::duration)
            .map(|(v, _)| v)
    }

    /// Reports the options nobody took, according to `policy`.
    pub(crate) fn finish(self, known: &[&str], policy: Unknown, diagnostics: &mut Diagnostics) {
        for (option, taken) in self.options.iter().zip(&self.taken) {
            if *taken {
                continue;
            }
            unknown(&option.key, self.owner, known, policy, diagnostics);
        }
    }
}

/// Warns about a name dvip does not know in `owner`, suggesting the closest known one.
pub(crate) fn unknown(
    key: &Word,
    owner: Owner<'_>,
    known: &[&str],
    policy: Unknown,
    diagnostics: &mut Diagnostics,
) {
    let suggestion = closest(&key.text, known);
    if policy == Unknown::WarnIfClose && suggestion.is_none() {
        return;
    }
    let d = diagnostics.warning(
        Code::UnknownOption,
        key.span,
        format!(
            "dvip does not know `{}` in {owner} and ignores it",
            key.text
        ),
    );
    match suggestion {
        Some(s) => d.with_hint(format!("did you mean `{s}`?")),
        None => d.with_hint(format!("known here: {}", known.join(", "))),
    };
}

/// The known name closest to `name`, if it is close enough to be a typo of it.
pub(crate) fn closest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = name.to_ascii_lowercase();
    known
        .iter()
        .map(|k| {
            (
                strsim::damerau_levenshtein(&lower, &k.to_ascii_lowercase()),
                *k,
            )
        })
        .filter(|&(distance, k)| distance > 0 && distance <= (k.len() / 4).max(1))
        .min()
        .map(|(_, k)| k)
}

/// Turns a refusal into an error at `word`.
pub(crate) fn refused<T>(
    diagnostics: &mut Diagnostics,
    word: &Word,
    result: Result<T, Refusal>,
) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(r) => {
            diagnostics
                .error(r.code, word.span, r.message)
                .with_hint(r.hint);
            None
        }
    }
}

/// The stanzas among `items`.
pub(crate) fn stanzas(items: &[Item]) -> impl Iterator<Item = &Stanza> {
    items.iter().filter_map(|i| match i {
        Item::Stanza(s) => Some(s),
        Item::Option(_) | Item::Bare(_) => None,
    })
}

/// Warns of a top-level stanza whose name is a near miss of one of `known`, a reader's own
/// stanzas; any other name is other readers' business.
pub(crate) fn near_miss(keyword: &Word, known: &[&str], diagnostics: &mut Diagnostics) {
    unknown(
        keyword,
        Owner::fixed("the configuration"),
        known,
        Unknown::WarnIfClose,
        diagnostics,
    );
}

/// A listener stanza's `Listen` stanzas, with a warning for its options and any other
/// stanza in it.
pub(crate) fn listens<'t>(
    listener: &'t Stanza,
    owner: Owner<'_>,
    diagnostics: &mut Diagnostics,
) -> Vec<&'t Stanza> {
    Options::new(owner, &listener.body.items).finish(&[], Unknown::Warn, diagnostics);
    let mut found = Vec::new();
    for inner in stanzas(&listener.body.items) {
        if inner.keyword.is("listen") {
            found.push(inner);
        } else {
            unknown(
                &inner.keyword,
                owner,
                &["Listen"],
                Unknown::Warn,
                diagnostics,
            );
        }
    }
    found
}
