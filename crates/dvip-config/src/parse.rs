//! The parser: tokens to the syntax tree, with `include` expanded in place.
//!
//! Owns the grammar both dialects share and recovery from mistakes, so one run reports every
//! syntax error of a file. It must not give keywords a meaning (except `include` and
//! `readonly_include`, which read a file or a directory of files in place).
//!
//! Inside a block (`{ }`, `[ ]`, the top level) an item is `key = value`,
//! `keyword args... [<attrs>] { ... }` (or `[ ... ]`, with the args on the keyword's line),
//! `keyword = { ... }` (the same stanza), `include "path"`, or a bare line of words that
//! lowering reports. Inside a list (`( )`) an entry is `head [<attrs>] [block]`,
//! `head = value`, or a bracketed group.

use std::path::{Path, PathBuf};

use crate::diagnostic::{Code, Diagnostic, Diagnostics, Severity};
use crate::lex::{lex, Delim, Token, TokenKind};
use crate::source::{Files, SourceMap, Span, FILE_SIZE_MAX};
use crate::tree::{Bare, Block, Entry, Item, List, OptionItem, Stanza, Value, Word};

/// Deeper nesting than this is refused, so hostile input cannot exhaust the stack.
pub(crate) const NESTING_DEPTH_MAX: usize = 64;
/// Longer include chains than this are refused.
pub(crate) const INCLUDE_DEPTH_MAX: usize = 16;

/// Reads a file and everything it includes.
pub(crate) struct Loader<'f> {
    files: &'f dyn Files,
    pub(crate) sources: SourceMap,
    pub(crate) diagnostics: Diagnostics,
    /// Identities of the files being read, outermost first, for cycle detection.
    stack: Vec<PathBuf>,
}

impl<'f> Loader<'f> {
    pub(crate) fn new(files: &'f dyn Files) -> Self {
        Self {
            files,
            sources: SourceMap::default(),
            diagnostics: Diagnostics::default(),
            stack: Vec::new(),
        }
    }

    /// Parses `path`, a file or a directory of files; `from` is the `include` that names it.
    pub(crate) fn parse_path(&mut self, path: &Path, from: Span) -> Vec<Item> {
        let Some(listing) = self.files.directory(path) else {
            return self.parse_file(path, Some(from));
        };
        match listing {
            Ok(entries) => {
                let mut items = Vec::new();
                for entry in entries {
                    if self.files.directory(&entry).is_some() {
                        self.diagnostics
                            .warning(
                                Code::Unreadable,
                                from,
                                format!(
                                    "`{}` is a directory inside an included directory and is not read",
                                    entry.display()
                                ),
                            )
                            .with_hint("include it by its own name if its files belong to this configuration");
                        continue;
                    }
                    items.extend(self.parse_file(&entry, Some(from)));
                }
                items
            }
            Err(e) => {
                self.diagnostics
                    .error(
                        Code::Unreadable,
                        from,
                        format!("cannot list the directory `{}`: {e}", path.display()),
                    )
                    .with_hint("check its permissions");
                Vec::new()
            }
        }
    }

    /// Parses `path`; `from` is the `include` that names it, if any. An unreadable file
    /// yields no items and one error at `from` (or on the path itself).
    pub(crate) fn parse_file(&mut self, path: &Path, from: Option<Span>) -> Vec<Item> {
        let fail = |loader: &mut Self, code: Code, message: String, hint: &str| {
            let mut d = match from {
                Some(span) => Diagnostic::new(Severity::Error, code, span, message),
                None => Diagnostic {
                    severity: Severity::Error,
                    code,
                    message,
                    span: None,
                    path: Some(path.to_owned()),
                    hint: None,
                },
            };
            d.with_hint(hint);
            loader.diagnostics.list.push(d);
            Vec::new()
        };
        let identity = match self.files.identity(path) {
            Ok(identity) => identity,
            Err(e) => {
                return fail(
                    self,
                    Code::Unreadable,
                    format!("cannot read `{}`: {e}", path.display()),
                    "check the path; an include is relative to the file that includes it",
                )
            }
        };
        if let Some(first) = self.stack.iter().position(|p| *p == identity) {
            let chain: Vec<String> = self.stack[first..]
                .iter()
                .chain([&identity])
                .map(|p| p.display().to_string())
                .collect();
            return fail(
                self,
                Code::IncludeCycle,
                format!("include cycle: {}", chain.join(" includes ")),
                "remove one of these includes",
            );
        }
        if self.stack.len() >= INCLUDE_DEPTH_MAX {
            return fail(
                self,
                Code::TooDeep,
                format!("includes nest deeper than {INCLUDE_DEPTH_MAX} files"),
                "flatten the include chain",
            );
        }
        let text = match self.files.read(path) {
            Ok(text) if text.len() > FILE_SIZE_MAX => {
                return fail(
                    self,
                    Code::Unreadable,
                    format!(
                        "`{}` is {} bytes, more than a config may be",
                        path.display(),
                        text.len()
                    ),
                    "point dvip at the configuration file",
                )
            }
            Ok(text) => text,
            Err(e) => {
                return fail(
                    self,
                    Code::Unreadable,
                    format!("cannot read `{}`: {e}", path.display()),
                    "check the path and its permissions",
                )
            }
        };
        let file = self.sources.add(path.to_owned(), text);
        let tokens = lex(file, &self.sources.file(file).text, &mut self.diagnostics);
        self.stack.push(identity);
        let mut parser = Parser {
            loader: self,
            tokens,
            pos: 0,
            open: Vec::new(),
        };
        let items = parser.block_items(None);
        self.stack.pop();
        items
    }
}

struct Parser<'l, 'f> {
    loader: &'l mut Loader<'f>,
    tokens: Vec<Token>,
    pos: usize,
    /// The brackets open around the current position, innermost last.
    open: Vec<(Delim, Span)>,
}

impl Parser<'_, '_> {
    fn peek(&self) -> Option<TokenKind> {
        self.tokens.get(self.pos).map(|t| t.kind)
    }

    /// Takes the current token. Its text moves out; nothing looks back at a consumed token.
    fn bump(&mut self) -> Token {
        let token = &mut self.tokens[self.pos];
        let taken = Token {
            kind: token.kind,
            span: token.span,
            text: std::mem::take(&mut token.text),
            starts_line: token.starts_line,
        };
        self.pos += 1;
        taken
    }

    fn diagnostics(&mut self) -> &mut Diagnostics {
        &mut self.loader.diagnostics
    }

    fn word(token: Token) -> Word {
        Word {
            quoted: token.kind == TokenKind::Quoted,
            span: token.span,
            text: token.text,
        }
    }

    fn peek_is_word(&self) -> bool {
        matches!(self.peek(), Some(TokenKind::Word | TokenKind::Quoted))
    }

    /// Enters a group whose opening token was just consumed. Returns false (having skipped
    /// the whole group) when nesting is too deep.
    fn enter(&mut self, delim: Delim, open: Span) -> bool {
        if self.open.len() >= NESTING_DEPTH_MAX {
            self.diagnostics()
                .error(
                    Code::TooDeep,
                    open,
                    format!("brackets nest deeper than {NESTING_DEPTH_MAX} levels"),
                )
                .with_hint("this is surely a mistake; check the brackets before this point");
            let mut depth = 1usize;
            while depth > 0 {
                match self.peek() {
                    None => break,
                    Some(TokenKind::Open(_)) => depth += 1,
                    Some(TokenKind::Close(_)) => depth -= 1,
                    Some(_) => {}
                }
                self.pos += 1;
            }
            return false;
        }
        self.open.push((delim, open));
        true
    }

    /// Handles the token that ends the group `delim` (or fails to). Returns true when the
    /// group is over, whether properly closed or not.
    fn at_group_end(&mut self, delim: Option<Delim>) -> bool {
        match self.peek() {
            None => {
                if let Some(&(d, open)) = self.open.last() {
                    self.diagnostics()
                        .error(
                            Code::Unclosed,
                            open,
                            format!("this `{}` is never closed", d.open()),
                        )
                        .with_hint(format!("add the missing `{}`", d.close()));
                }
                true
            }
            Some(TokenKind::Close(d)) if Some(d) == delim => {
                self.pos += 1;
                true
            }
            Some(TokenKind::Close(d)) if self.open.iter().any(|&(o, _)| o == d) => {
                // An outer group closes here: this one was left open.
                let &(inner, open) = self
                    .open
                    .last()
                    .expect("inside a group, since `delim` is Some");
                let close = self.tokens[self.pos].span;
                let at = self.loader.sources.location(close);
                self.diagnostics()
                    .error(
                        Code::Unclosed,
                        open,
                        format!(
                            "this `{}` is not closed before the `{}` at line {}",
                            inner.open(),
                            d.close(),
                            at.line
                        ),
                    )
                    .with_hint(format!("add the missing `{}`", inner.close()));
                true
            }
            Some(TokenKind::Close(d)) => {
                let span = self.bump().span;
                self.diagnostics()
                    .error(
                        Code::Unexpected,
                        span,
                        format!("`{}` closes nothing", d.close()),
                    )
                    .with_hint("remove it, or add the bracket it was meant to close");
                false
            }
            _ => false,
        }
    }

    fn leave(&mut self) {
        self.open.pop();
    }

    /// Items until the close of `delim` (or the end of the file at the top level).
    fn block_items(&mut self, delim: Option<Delim>) -> Vec<Item> {
        let mut items = Vec::new();
        while !self.at_group_end(delim) {
            match self.peek() {
                Some(TokenKind::Word | TokenKind::Quoted) => self.item(&mut items),
                Some(TokenKind::Eq) => {
                    let span = self.bump().span;
                    self.diagnostics()
                        .error(Code::Unexpected, span, "`=` with no option name before it")
                        .with_hint("write `name = value`");
                    // Skip the value it would have taken, so it is not read as the next item.
                    if self.peek_is_word() {
                        self.pos += 1;
                    }
                }
                Some(TokenKind::Open(d)) => {
                    let open = self.bump().span;
                    self.diagnostics()
                        .error(
                            Code::Unexpected,
                            open,
                            format!("a `{}` block with no name before it", d.open()),
                        )
                        .with_hint(
                            "name the stanza (`Binding \"name\" { ... }`) or remove the block",
                        );
                    // Parse and drop it, so errors inside are still reported.
                    self.group_value(d, open);
                }
                // `at_group_end` consumed or reported every close and the end of input.
                Some(TokenKind::Close(_)) | None => {}
            }
        }
        items
    }

    /// One option, stanza, include or bare line starting at the current word.
    fn item(&mut self, items: &mut Vec<Item>) {
        let keyword = Self::word(self.bump());
        let include = keyword.is("include") || keyword.is("readonly_include");
        // The path stands on the include's line; a lone `include` never takes the next line.
        if include && !keyword.quoted && self.peek_is_word() && !self.tokens[self.pos].starts_line {
            let path = Self::word(self.bump());
            let base = self
                .loader
                .sources
                .file(keyword.span.file)
                .path
                .parent()
                .map(Path::to_path_buf);
            let full = match base {
                Some(base) if Path::new(&path.text).is_relative() => base.join(&path.text),
                _ => PathBuf::from(&path.text),
            };
            items.extend(self.loader.parse_path(&full, keyword.span.to(path.span)));
            return;
        }
        if self.peek() == Some(TokenKind::Eq) {
            let eq = self.bump().span;
            match self.value(&keyword, eq) {
                // `NAME = { ... }` is Momentum's other spelling of `NAME { ... }`.
                Some(Value::Block(body)) => items.push(Item::Stanza(Stanza {
                    keyword,
                    args: Vec::new(),
                    attrs: Vec::new(),
                    body,
                })),
                Some(value) => items.push(Item::Option(OptionItem {
                    key: keyword,
                    value,
                })),
                None => {}
            }
            return;
        }
        let mut args = Vec::new();
        // A stanza's names stand on its keyword's line, so a lone word never takes the next
        // line's stanza header as its names. A word followed by `=` starts the next option.
        while self.peek_is_word()
            && !self.tokens[self.pos].starts_line
            && self.tokens.get(self.pos + 1).map(|t| t.kind) != Some(TokenKind::Eq)
        {
            args.push(Self::word(self.bump()));
        }
        let attrs = self.attrs();
        match self.peek() {
            Some(TokenKind::Open(d @ (Delim::Brace | Delim::Bracket))) => {
                let open = self.bump().span;
                let body = self.block(d, open);
                items.push(Item::Stanza(Stanza {
                    keyword,
                    args,
                    attrs,
                    body,
                }));
            }
            _ if attrs.is_empty() => items.push(Item::Bare(Bare { keyword, args })),
            _ => {
                self.diagnostics()
                    .error(
                        Code::Unexpected,
                        keyword.span,
                        format!("`{}` has attributes but no block", keyword.text),
                    )
                    .with_hint(format!(
                        "write `{0} NAME <...> {{ ... }}`, or remove the `< >`",
                        keyword.text
                    ));
            }
        }
    }

    /// `<key="value" ...>` if one stands here.
    fn attrs(&mut self) -> Vec<OptionItem> {
        if self.peek() != Some(TokenKind::Open(Delim::Angle)) {
            return Vec::new();
        }
        let open = self.bump().span;
        let block = self.block(Delim::Angle, open);
        let mut attrs = Vec::new();
        for item in block.items {
            match item {
                Item::Option(option) => attrs.push(option),
                Item::Stanza(Stanza { keyword, .. }) | Item::Bare(Bare { keyword, .. }) => {
                    self.diagnostics()
                        .error(
                            Code::Unexpected,
                            keyword.span,
                            "attributes are `name=\"value\"` pairs",
                        )
                        .with_hint("write `<duravip=\"enabled\">`");
                }
            }
        }
        attrs
    }

    fn block(&mut self, delim: Delim, open: Span) -> Block {
        if !self.enter(delim, open) {
            return Block::new(open, delim, Vec::new());
        }
        let items = self.block_items(Some(delim));
        self.leave();
        Block::new(open, delim, items)
    }

    fn list(&mut self, open: Span) -> List {
        let mut entries = Vec::new();
        if !self.enter(Delim::Paren, open) {
            return List { open, entries };
        }
        while !self.at_group_end(Some(Delim::Paren)) {
            match self.peek() {
                Some(TokenKind::Word | TokenKind::Quoted) => {
                    let head = Self::word(self.bump());
                    if self.peek() == Some(TokenKind::Eq) {
                        let eq = self.bump().span;
                        let value = self.value(&head, eq);
                        entries.push(Entry::Item {
                            head,
                            attrs: Vec::new(),
                            value,
                            block: None,
                        });
                        continue;
                    }
                    let attrs = self.attrs();
                    let block = match self.peek() {
                        Some(TokenKind::Open(d @ (Delim::Brace | Delim::Bracket))) => {
                            let open = self.bump().span;
                            Some(self.block(d, open))
                        }
                        _ => None,
                    };
                    entries.push(Entry::Item {
                        head,
                        attrs,
                        value: None,
                        block,
                    });
                }
                Some(TokenKind::Open(Delim::Angle)) => {
                    let span = self.tokens[self.pos].span;
                    self.diagnostics()
                        .error(
                            Code::Unexpected,
                            span,
                            "attributes `< >` with no address before them",
                        )
                        .with_hint(
                            "write the address first: `192.0.2.10:25 <duravip=\"enabled\">`",
                        );
                    self.attrs();
                }
                Some(TokenKind::Open(d)) => {
                    let open = self.bump().span;
                    if let Some(value) = self.group_value(d, open) {
                        entries.push(Entry::Group(value));
                    }
                }
                Some(TokenKind::Eq) => {
                    let span = self.bump().span;
                    self.diagnostics()
                        .error(Code::Unexpected, span, "`=` with no name before it")
                        .with_hint("write `name = value`");
                }
                Some(TokenKind::Close(_)) | None => {}
            }
        }
        self.leave();
        List { open, entries }
    }

    /// The group opened by `delim` (just consumed) as a value.
    fn group_value(&mut self, delim: Delim, open: Span) -> Option<Value> {
        match delim {
            Delim::Paren => Some(Value::List(self.list(open))),
            Delim::Brace | Delim::Bracket => Some(Value::Block(self.block(delim, open))),
            Delim::Angle => {
                self.block(delim, open);
                None
            }
        }
    }

    /// The value after `key =`.
    fn value(&mut self, key: &Word, eq: Span) -> Option<Value> {
        match self.peek() {
            Some(TokenKind::Word | TokenKind::Quoted) => Some(Value::Word(Self::word(self.bump()))),
            Some(TokenKind::Open(d)) if d != Delim::Angle => {
                let open = self.bump().span;
                self.group_value(d, open)
            }
            _ => {
                self.diagnostics()
                    .error(
                        Code::Unexpected,
                        eq,
                        format!("`{} =` has no value", key.text),
                    )
                    .with_hint("write a value after `=`, quoted if it holds spaces");
                None
            }
        }
    }
}
