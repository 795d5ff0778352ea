//! The lexer: configuration text to tokens.
//!
//! Owns what a word, a quoted string, a comment and a bracket are, and where lines break
//! between tokens (a stanza's names stand on its keyword's line). It knows one keyword:
//! after `Domain`, a `/pattern/` is one word, since a pattern holds brackets of its own. Every
//! other word is just text here.

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
    /// Whether a line ends between this token and the one before (or this is the first).
    pub(crate) starts_line: bool,
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

/// The length of a bracketed IPv6 address (or `[*]`, every IPv6 address) starting at `i`,
/// brackets included, or `None`. A 2.x listener list writes `[2001:db8::10]:25` bare, and its
/// `[` must not open a block; a block's `[` is followed by a space or by something that is not
/// an address.
fn bracketed_address_at(bytes: &[u8], i: usize) -> Option<usize> {
    let inner = &bytes[i + 1..];
    let close = inner.iter().position(|&b| b == b']')?;
    let content = &inner[..close];
    let address_like = content == b"*"
        || (content.contains(&b':')
            && content
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.'));
    address_like.then_some(close + 2)
}

/// The length of a `/pattern/` (with any flags after it) starting at `i`, or `None` when the
/// line holds no closing `/`. A `\/` inside does not close it.
fn pattern_at(bytes: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while let Some(&b) = bytes.get(j) {
        match b {
            b'\\' => j += 2,
            b'\n' => return None,
            b'/' => {
                j += 1;
                // Flags (`/i`) belong to the pattern.
                while bytes.get(j).is_some_and(u8::is_ascii_alphabetic) {
                    j += 1;
                }
                return Some(j - i);
            }
            _ => j += 1,
        }
    }
    None
}

/// Splits `text` into tokens, reporting unterminated strings and comments and carrying on
/// after them.
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
    let mut tokens: Vec<Token> = Vec::with_capacity(text.len() / 4);
    let mut line_break = true;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let space = whitespace_at(text, i);
        if space > 0 {
            line_break |= b == b'\n';
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
        if b == b'/' && bytes.get(i + 1) == Some(&b'*') {
            // A C comment; like `#`, only where a token would start, so a path such as
            // `/var/spool/*` keeps its star.
            match text[i + 2..].find("*/") {
                Some(n) => {
                    line_break |= text[i..i + 2 + n].contains('\n');
                    i += n + 4;
                }
                None => {
                    diagnostics
                        .error(
                            Code::Unclosed,
                            span(i, i + 2),
                            "this `/*` comment is never closed",
                        )
                        .with_hint("close it with `*/`; everything after it was read as comment");
                    i = bytes.len();
                }
            }
            continue;
        }
        let starts_line = std::mem::replace(&mut line_break, false);
        let after_domain = !starts_line
            && tokens.last().is_some_and(|t| {
                t.kind == TokenKind::Word && t.text.eq_ignore_ascii_case("domain")
            });
        let mut push = |kind, start, end, text| {
            tokens.push(Token {
                kind,
                span: span(start, end),
                text,
                starts_line,
            });
        };
        // A word that a bracket or a slash would otherwise cut short: a bracketed IPv6
        // address, or a pattern after `Domain`.
        let whole_word = match b {
            b'[' => bracketed_address_at(bytes, i).map(|n| word_end(text, i + n)),
            b'/' if after_domain => pattern_at(bytes, i).map(|n| i + n),
            _ => None,
        };
        if let Some(end) = whole_word {
            push(TokenKind::Word, i, end, text[i..end].to_owned());
            i = end;
            continue;
        }
        if let Some(kind) = punctuation(b) {
            push(kind, i, i + 1, String::new());
            i += 1;
            continue;
        }
        if b == b'"' {
            let (value, end) = quoted(text, i, &span, diagnostics);
            push(TokenKind::Quoted, i, end, value);
            i = end;
            continue;
        }
        let end = word_end(text, i);
        push(TokenKind::Word, i, end, text[i..end].to_owned());
        i = end;
    }
    tokens
}

/// Where a bare word starting at `i` ends: at whitespace, a bracket, `=` or `"`.
fn word_end(text: &str, mut i: usize) -> usize {
    let bytes = text.as_bytes();
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
    i
}

/// The unescaped text of the string whose opening quote is at `start`, and where it ends.
fn quoted(
    text: &str,
    start: usize,
    span: &impl Fn(usize, usize) -> Span,
    diagnostics: &mut Diagnostics,
) -> (String, usize) {
    let bytes = text.as_bytes();
    let mut i = start + 1;
    let mut value = String::new();
    let mut segment = i;
    loop {
        match bytes.get(i) {
            Some(b'"') => {
                value.push_str(&text[segment..i]);
                return (value, i + 1);
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
                    .error(
                        Code::UnterminatedString,
                        span(start, start + 1),
                        "this string has no closing quote",
                    )
                    .with_hint(
                        "close it with `\"` on the same line; write `\\\"` for a quote inside it",
                    );
                return (value, i);
            }
            Some(_) => i += 1,
        }
    }
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

    #[test]
    fn c_comments_are_skipped_where_a_token_would_start_and_count_their_line_breaks() {
        let mut d = Diagnostics::default();
        let tokens = lex(FileId(0), "a /* x\n y */ b /var/*/c\n/* z */ d", &mut d);
        let texts: Vec<&str> = tokens.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, ["a", "b", "/var/*/c", "d"]);
        let lines: Vec<bool> = tokens.iter().map(|t| t.starts_line).collect();
        assert_eq!(lines, [true, true, false, true]);
        assert!(d.list.is_empty());
        lex(FileId(0), "a /* never closed", &mut d);
        assert_eq!(d.list[0].code, Code::Unclosed);
    }

    #[test]
    fn a_bracketed_ipv6_address_is_a_word_and_a_block_is_not() {
        let t = kinds_and_texts("[2001:db8::10]:25,200~20 [*]:25 [ a = b ] [x]");
        let texts: Vec<&str> = t.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(
            texts,
            [
                "[2001:db8::10]:25,200~20",
                "[*]:25",
                "",
                "a",
                "",
                "b",
                "",
                "",
                "x",
                ""
            ]
        );
        assert_eq!(t[2].0, TokenKind::Open(Delim::Bracket));
    }

    #[test]
    fn a_pattern_after_domain_on_its_line_is_one_word() {
        let t = kinds_and_texts("Domain /^(a|b)[0-9]{2}\\/x$/i { } Domain\n/path { }");
        let texts: Vec<&str> = t.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Domain",
                "/^(a|b)[0-9]{2}\\/x$/i",
                "",
                "",
                "Domain",
                "/path",
                "",
                ""
            ]
        );
    }
}
