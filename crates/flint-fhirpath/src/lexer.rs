//! Tokenizer for FHIRPath expressions: identifiers (plain and `` `delimited` ``), string,
//! number and date/time literals, `%` environment variables, `$` special variables, operators
//! and punctuation; `//` and `/* */` comments are skipped.

use crate::error::Error;
use crate::temporal::{Date, DateTime, Time};

/// A token kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// An identifier; `quoted` when written with backticks (never a keyword then).
    Ident { name: String, quoted: bool },
    /// A string literal (escapes resolved).
    Str(String),
    /// A number literal as written (integer or decimal).
    Number(String),
    /// `@2015-02-04`.
    Date(Date),
    /// `@2015-02-04T14:34` (or `@2015T`).
    DateTime(DateTime),
    /// `@T14:34`.
    Time(Time),
    /// `%name`, `` %`name` `` or `%'name'`.
    Var(String),
    /// `$this`, `$index`, `$total`.
    Special(String),
    /// An operator or punctuation symbol.
    Sym(&'static str),
    /// End of input.
    Eof,
}

/// A token with its byte offset.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) pos: usize,
}

const SYMBOLS: &[&str] = &[
    "!=", "!~", "<=", ">=", ".", "(", ")", "[", "]", "{", "}", ",", "+", "-", "*", "/", "|", "&",
    "=", "~", "<", ">",
];

/// Splits `src` into tokens (ending with `Eof`).
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, Error> {
    let mut lx = Lexer {
        src,
        bytes: src.as_bytes(),
        pos: 0,
    };
    let mut out = Vec::new();
    loop {
        lx.skip_trivia()?;
        let pos = lx.pos;
        let Some(&c) = lx.bytes.get(pos) else {
            out.push(Token { tok: Tok::Eof, pos });
            return Ok(out);
        };
        let tok = match c {
            b'\'' => Tok::Str(lx.quoted(b'\'')?),
            b'`' => Tok::Ident {
                name: lx.quoted(b'`')?,
                quoted: true,
            },
            b'0'..=b'9' => lx.number(),
            b'@' => lx.temporal()?,
            b'%' => {
                lx.pos += 1;
                match lx.bytes.get(lx.pos) {
                    Some(b'`') => Tok::Var(lx.quoted(b'`')?),
                    Some(b'\'') => Tok::Var(lx.quoted(b'\'')?),
                    _ => {
                        let name = lx.ident();
                        if name.is_empty() {
                            return Err(Error::syntax(pos, "expected a variable name after '%'"));
                        }
                        Tok::Var(name.to_string())
                    }
                }
            }
            b'$' => {
                lx.pos += 1;
                let name = lx.ident();
                if name.is_empty() {
                    return Err(Error::syntax(pos, "expected a name after '$'"));
                }
                Tok::Special(name.to_string())
            }
            c if c == b'_' || c.is_ascii_alphabetic() => Tok::Ident {
                name: lx.ident().to_string(),
                quoted: false,
            },
            _ => {
                let rest = &lx.src[pos..];
                match SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
                    Some(s) => {
                        lx.pos += s.len();
                        Tok::Sym(s)
                    }
                    None => {
                        let ch = rest.chars().next().unwrap_or('?');
                        return Err(Error::syntax(pos, format!("unexpected character '{ch}'")));
                    }
                }
            }
        };
        out.push(Token { tok, pos });
    }
}

struct Lexer<'s> {
    src: &'s str,
    bytes: &'s [u8],
    pos: usize,
}

impl<'s> Lexer<'s> {
    fn peek_at(&self, off: usize) -> Option<u8> {
        self.bytes.get(self.pos + off).copied()
    }

    fn skip_trivia(&mut self) -> Result<(), Error> {
        loop {
            match (self.peek_at(0), self.peek_at(1)) {
                (Some(c), _) if c.is_ascii_whitespace() => self.pos += 1,
                (Some(b'/'), Some(b'/')) => {
                    while let Some(c) = self.peek_at(0) {
                        if c == b'\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                (Some(b'/'), Some(b'*')) => {
                    let start = self.pos;
                    match self.src[self.pos + 2..].find("*/") {
                        Some(i) => self.pos += 2 + i + 2,
                        None => return Err(Error::syntax(start, "unterminated comment")),
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn ident(&mut self) -> &'s str {
        let start = self.pos;
        while let Some(c) = self.peek_at(0) {
            if c == b'_' || c.is_ascii_alphanumeric() {
                self.pos += 1;
            } else {
                break;
            }
        }
        &self.src[start..self.pos]
    }

    fn number(&mut self) -> Tok {
        let start = self.pos;
        while self.peek_at(0).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.peek_at(0) == Some(b'.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
            while self.peek_at(0).is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
        }
        Tok::Number(self.src[start..self.pos].to_string())
    }

    /// A quoted string or identifier with FHIRPath escapes.
    fn quoted(&mut self, q: u8) -> Result<String, Error> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = &self.src[self.pos..];
            let mut chars = rest.chars();
            let Some(ch) = chars.next() else {
                return Err(Error::syntax(start, "unterminated string or identifier"));
            };
            self.pos += ch.len_utf8();
            if ch as u32 == u32::from(q) {
                return Ok(out);
            }
            if ch != '\\' {
                out.push(ch);
                continue;
            }
            let Some(e) = chars.next() else {
                return Err(Error::syntax(start, "unterminated escape"));
            };
            self.pos += e.len_utf8();
            match e {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'f' => out.push('\u{c}'),
                'u' => {
                    let hex = self
                        .src
                        .get(self.pos..self.pos + 4)
                        .ok_or_else(|| Error::syntax(self.pos, "bad \\u escape"))?;
                    let code = u32::from_str_radix(hex, 16)
                        .map_err(|_| Error::syntax(self.pos, "bad \\u escape"))?;
                    self.pos += 4;
                    match char::from_u32(code) {
                        Some(c) => out.push(c),
                        None => out.push('\u{fffd}'),
                    }
                }
                other => out.push(other),
            }
        }
    }

    /// `@` date, date-time or time literal.
    fn temporal(&mut self) -> Result<Tok, Error> {
        let start = self.pos;
        self.pos += 1;
        let body_start = self.pos;
        let is_time = self.peek_at(0) == Some(b'T');
        if is_time {
            self.pos += 1;
        }
        // Take the longest run of characters that can belong to a date/time literal.
        while let Some(c) = self.peek_at(0) {
            let ok = c.is_ascii_digit()
                || c == b'-'
                || c == b':'
                || c == b'T'
                || c == b'Z'
                || c == b'+'
                || (c == b'.' && self.peek_at(1).is_some_and(|d| d.is_ascii_digit()));
            if !ok {
                break;
            }
            self.pos += 1;
        }
        let body = &self.src[body_start..self.pos];
        let bad = || Error::syntax(start, format!("invalid date/time literal '@{body}'"));
        if is_time {
            return Time::parse(&body[1..]).map(Tok::Time).ok_or_else(bad);
        }
        if body.contains('T') {
            return DateTime::parse(body).map(Tok::DateTime).ok_or_else(bad);
        }
        // A plain date; a trailing time zone (not allowed on dates) makes it invalid.
        Date::parse(body).map(Tok::Date).ok_or_else(bad)
    }
}
