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

fn punctuation(b: u8) -> Option<TokenKind> {
    Some(match b {
        b'=' => TokenKind::Eq,
        b'(' => TokenKind::Open(Delim::Paren),
        b')' => TokenKind::Close(Delim::Paren),
        b'[' => TokenKind::Open(Delim::Bracket),
        b']' => TokenKind::Close(Delim::Bracket),
        b'{' => TokenKind::Open(Delim::Brace),
        b'}' => TokenKind::Close(Delim::Brace),
        b'<' => TokenKind::Open(Delim::Angle),
        b'>' => TokenKind::Close(Delim::Angle),
        _ => return None,
    })
}

/// The length of the whitespace character at `i`, or 0 if there is none. Every delimiter is
/// ASCII, so only whitespace outside ASCII needs decoding.
fn whitespace_at(text: &str, i: usize) -> usize {
    let b = text.as_bytes()[i];
    if b.is_ascii() {
        return usize::from(b.is_ascii_whitespace());
    }
    match text[i..].chars().next() {
        Some(c) if c.is_whitespace() => c.len_utf8(),
        _ => 0,
    }
}

/// Splits `text` into tokens, reporting unterminated strings and carrying on after them.
///
/// Works on bytes: every delimiter is ASCII, so a cut never lands inside a UTF-8 character.
pub(crate) fn lex(file: FileId, text: &str, diagnostics: &mut Diagnostics) -> Vec<Token> {
    let span = |start: usize, end: usize| Span {
        file,
        start: offset(start),
        end: offset(end),
    };
    let bytes = text.as_bytes();
    // Configs average well over four bytes a token; reserving avoids regrowing a large Vec.
    let mut tokens = Vec::with_capacity(text.len() / 4);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let space = whitespace_at(text, i);
        if space > 0 {
            i += space;
            continue;
        }
        if b == b'#' {
            // A comment runs to the end of the line; `#` inside a word does not start one.
            i = bytes[i..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |n| i + n);
            continue;
        }
        if let Some(kind) = punctuation(b) {
            tokens.push(Token {
                kind,
                span: span(i, i + 1),
                text: String::new(),
            });
            i += 1;
            continue;
        }
        let start = i;
        if b == b'"' {
            i += 1;
            let mut value = String::new();
            let mut segment = i;
            let end = loop {
                match bytes.get(i) {
                    Some(b'"') => {
                        value.push_str(&text[segment..i]);
                        i += 1;
                        break i;
                    }
                    Some(b'\\') => {
                        value.push_str(&text[segment..i]);
                        match bytes.get(i + 1) {
                            Some(&e @ (b'"' | b'\\')) => {
                                value.push(char::from(e));
                                i += 2;
                            }
                            _ => {
                                value.push('\\');
                                i += 1;
                            }
                        }
                        segment = i;
                    }
                    Some(b'\n') | None => {
                        value.push_str(&text[segment..i]);
                        diagnostics
                            .error(Code::UnterminatedString, span(start, start + 1), "this string has no closing quote")
                            .with_hint("close it with `\"` on the same line; write `\\\"` for a quote inside it");
                        break i;
                    }
                    Some(_) => i += 1,
                }
            };
            tokens.push(Token {
                kind: TokenKind::Quoted,
                span: span(start, end),
                text: value,
            });
            continue;
        }
        while let Some(&b) = bytes.get(i) {
            if b.is_ascii() {
                if b.is_ascii_whitespace() || b == b'"' || punctuation(b).is_some() {
                    break;
                }
                i += 1;
            } else {
                // Step over whole characters so `i` stays on a character boundary.
                match text[i..].chars().next() {
                    Some(c) if !c.is_whitespace() => i += c.len_utf8(),
                    _ => break,
                }
            }
        }
        tokens.push(Token {
            kind: TokenKind::Word,
            span: span(start, i),
            text: text[start..i].to_owned(),
        });
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds_and_texts(text: &str) -> Vec<(TokenKind, String)> {
        let mut d = Diagnostics::default();
        lex(FileId(0), text, &mut d)
            .into_iter()
            .map(|t| (t.kind, t.text))
            .collect()
    }

    #[test]
    fn words_stop_at_delimiters_quotes_and_any_whitespace() {
        let t = kinds_and_texts("a=b\u{a0}cé{\"x y\"}#c\nd#e");
        let texts: Vec<&str> = t.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(texts, ["a", "", "b", "cé", "", "x y", "", "d#e"]);
        assert_eq!(t[5].0, TokenKind::Quoted);
    }

    #[test]
    fn escapes_resolve_quotes_and_backslashes_and_keep_the_rest() {
        let t = kinds_and_texts(r#""a\"b\\c\d""#);
        assert_eq!(t[0].1, r#"a"b\c\d"#);
    }

    #[test]
    fn an_unterminated_string_ends_at_its_line_and_lexing_goes_on() {
        let mut d = Diagnostics::default();
        let tokens = lex(FileId(0), "x = \"open\ny = 2", &mut d);
        assert_eq!(d.list.len(), 1);
        assert_eq!(d.list[0].code, Code::UnterminatedString);
        let texts: Vec<&str> = tokens.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, ["x", "", "open", "y", "", "2"]);
    }
}
