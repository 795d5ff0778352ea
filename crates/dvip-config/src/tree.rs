//! The syntax tree: a whole configuration file as written, every stanza kept.
//!
//! Owns the generic shape both dialects share (options, stanzas, lists, blocks). It must not
//! give any keyword a meaning; `lower` does that. Stanzas dvip does not use stay here, so a
//! whole MTA config can be checked and nothing in it is lost.

use crate::lex::Delim;
use crate::source::Span;

/// A word as written: bare or quoted, with where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The text, with quotes removed and escapes resolved.
    pub text: String,
    /// Where it stands, quotes included.
    pub span: Span,
    /// Whether it was written in double quotes.
    pub quoted: bool,
}

impl Word {
    /// Case-insensitive comparison, as keywords and option names are compared.
    pub fn is(&self, keyword: &str) -> bool {
        self.text.eq_ignore_ascii_case(keyword)
    }
}

/// One thing inside a block: an option or a stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// `key = value`.
    Option(OptionItem),
    /// `keyword [args...] [<attrs>] { ... }` or `keyword [ ... ]`; also `keyword = { ... }`.
    Stanza(Stanza),
    /// A line of words with no value and no block, which dvip cannot read. Kept so that
    /// lowering reports it where it stands (an error where dvip's own configuration could
    /// be, a warning elsewhere) instead of letting it swallow what follows.
    Bare(Bare),
}

/// `keyword [args...]` alone: no `=`, no block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bare {
    /// The first word.
    pub keyword: Word,
    /// The words after it on its line.
    pub args: Vec<Word>,
}

/// `key = value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionItem {
    /// The option's name.
    pub key: Word,
    /// Its value.
    pub value: Value,
}

/// A named block: `Binding NAME <attrs> { ... }`, `Topology "CIDR" { ... }`, `logs [ ... ]`.
/// `NAME = { ... }` (and `NAME = [ ... ]`) is the same stanza written as an assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stanza {
    /// The first word, which says what the stanza is.
    pub keyword: Word,
    /// Words on the keyword's line between it and the body (names, module paths).
    pub args: Vec<Word>,
    /// `<key="value" ...>` attributes (2.x dialect).
    pub attrs: Vec<OptionItem>,
    /// The body.
    pub body: Block,
}

/// The right-hand side of an option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A single word or string.
    Word(Word),
    /// `( ... )`.
    List(List),
    /// `[ ... ]` or `{ ... }`.
    Block(Block),
}

impl Value {
    /// Where the value starts.
    pub fn span(&self) -> Span {
        match self {
            Self::Word(w) => w.span,
            Self::List(l) => l.open,
            Self::Block(b) => b.open,
        }
    }
}

/// `[ ... ]` or `{ ... }`: options and stanzas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Where the opening bracket stands.
    pub open: Span,
    /// Whether it was written with `[ ]` (2.x) or `{ }`.
    pub bracket: bool,
    /// What is inside, includes already expanded.
    pub items: Vec<Item>,
}

impl Block {
    pub(crate) fn new(open: Span, delim: Delim, items: Vec<Item>) -> Self {
        Self {
            open,
            bracket: delim == Delim::Bracket,
            items,
        }
    }
}

/// `( ... )`: a list of entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List {
    /// Where the `(` stands.
    pub open: Span,
    /// The entries.
    pub entries: Vec<Entry>,
}

/// One entry of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// `head [<attrs>] [block]` or `head = value`, e.g. a 2.x listener
    /// `192.0.2.1:25 <duravip="enabled"> [ ...ACL... ]`.
    Item {
        /// The first word.
        head: Word,
        /// `<...>` attributes.
        attrs: Vec<OptionItem>,
        /// The value after `=`, if written so.
        value: Option<Value>,
        /// A `[ ]` or `{ }` block after the head.
        block: Option<Block>,
    },
    /// A bracketed group standing on its own.
    Group(Value),
}
