//! The lexer: configuration text to tokens.
//!
//! Owns what a word, a quoted string, a comment and a bracket are. It must not know any
//! keyword; every word is just text here.

use crate::diagnostic::{Code, Diagnostics};
use crate::source::{offset, FileId, Span};

/// The four kinds of bracket the language nests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delim {
    /// `( )`: a list of entries (2.x listener lists, ACL actions).
    Paren,
    /// `[ ]`: a block of options in the 2.x dialect.
    Bracket,
    /// `{ }`: a block of options or stanzas.
    Brace,
    /// `< >`: attributes on a 2.x binding or listener entry.
    Angle,
}

impl Delim {
    pub(crate) fn open(self) -> char {
        match self {
            Self::Paren => '(',
            Self::Bracket => '[',
            Self::Brace => '{',
            Self::Angle => '<',
        }
    }

    pub(crate) fn close(self) -> char {
        match self {
            Self::Paren => ')',
            Self::Bracket => ']',
            Self::Brace => '}',
            Self::Angle => '>',
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// A bare word: anything up to whitespace, a bracket, `=` or `"`.
    Word,
    /// A double-quoted string; its text is unescaped.
    Quoted,
    Eq,
    Open(Delim),
    Close(Delim),
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    pub(crate) span: Span,
    /// The word or the unescaped string; empty for punctuation.
    pub(crate) text: String,
}

fn punctuation(c: char) -> Option<TokenKind> {
    Some(match c {
        '=' => TokenKind::Eq,
        '(' => TokenKind::Open(Delim::Paren),
        ')' => TokenKind::Close(Delim::Paren),
        '[' => TokenKind::Open(Delim::Bracket),
        ']' => TokenKind::Close(Delim::Bracket),
        '{' => TokenKind::Open(Delim::Brace),
        '}' => TokenKind::Close(Delim::Brace),
        '<' => TokenKind::Open(Delim::Angle),
        '>' => TokenKind::Close(Delim::Angle),
        _ => return None,
    })
}

fn ends_word(c: char) -> bool {
    c.is_whitespace() || c == '"' || punctuation(c).is_some()
}

/// Splits `text` into tokens, reporting unterminated strings and carrying on after them.
pub(crate) fn lex(file: FileId, text: &str, diagnostics: &mut Diagnostics) -> Vec<Token> {
    let span = |start: usize, end: usize| Span {
        file,
        start: offset(start),
        end: offset(end),
    };
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        if c == '#' {
            // A comment runs to the end of the line; `#` inside a word does not start one.
            while chars.next_if(|&(_, c)| c != '\n').is_some() {}
            continue;
        }
        if let Some(kind) = punctuation(c) {
            tokens.push(Token {
                kind,
                span: span(start, start + 1),
                text: String::new(),
            });
            continue;
        }
        if c == '"' {
            let mut value = String::new();
            let mut end = None;
            while let Some((i, c)) = chars.next_if(|&(_, c)| c != '\n') {
                match c {
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    '\\' => match chars.next_if(|&(_, c)| c != '\n') {
                        Some((_, e @ ('"' | '\\'))) => value.push(e),
                        Some((_, other)) => {
                            value.push('\\');
                            value.push(other);
                        }
                        None => value.push('\\'),
                    },
                    other => value.push(other),
                }
            }
            let end = end.unwrap_or_else(|| {
                let line_end = chars.peek().map_or(text.len(), |&(i, _)| i);
                diagnostics
                    .error(
                        Code::UnterminatedString,
                        span(start, start + 1),
                        "this string has no closing quote",
                    )
                    .with_hint(
                        "close it with `\"` on the same line; write `\\\"` for a quote inside it",
                    );
                line_end
            });
            tokens.push(Token {
                kind: TokenKind::Quoted,
                span: span(start, end),
                text: value,
            });
            continue;
        }
        let mut end = start + c.len_utf8();
        while let Some((i, c)) = chars.next_if(|&(_, c)| !ends_word(c)) {
            end = i + c.len_utf8();
        }
        tokens.push(Token {
            kind: TokenKind::Word,
            span: span(start, end),
            text: text[start..end].to_owned(),
        });
    }
    tokens
}
