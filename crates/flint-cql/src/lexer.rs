//! The CQL lexer: turns source text into tokens with their line and column.

use crate::error::SyntaxError;

/// The kind of a token.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// An identifier or keyword.
    Ident(String),
    /// A delimited identifier `"..."` or `` `...` ``.
    Quoted(String),
    /// A string literal `'...'` (escapes resolved).
    Str(String),
    /// An integer or decimal number as written.
    Number(String),
    /// A Long literal `1L` (digits only).
    Long(String),
    /// A date or date-time literal after `@`.
    DateTime(String),
    /// A time literal after `@T`.
    Time(String),
    /// A punctuation symbol or operator.
    Sym(&'static str),
    /// End of input.
    Eof,
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// Line, 1-based.
    pub line: usize,
    /// Column, 1-based.
    pub column: usize,
}

const SYMS: [&str; 27] = [
    "<=", ">=", "!=", "!~", "->", "(", ")", "[", "]", "{", "}", ",", ".", ":", "+", "-", "*", "/",
    "^", "&", "|", "<", ">", "=", "~", ",", "#",
];

/// Splits `src` into tokens; the last one is `Tok::Eof`.
pub fn lex(src: &str) -> Result<Vec<Token>, SyntaxError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    let err = |line, column, m: &str| SyntaxError {
        line,
        column,
        message: m.to_string(),
    };
    while i < chars.len() {
        let c = chars[i];
        let (sl, sc) = (line, col);
        let adv = |n: usize, i: &mut usize, line: &mut usize, col: &mut usize| {
            for _ in 0..n {
                if chars.get(*i) == Some(&'\n') {
                    *line += 1;
                    *col = 1;
                } else {
                    *col += 1;
                }
                *i += 1;
            }
        };
        if c.is_whitespace() {
            adv(1, &mut i, &mut line, &mut col);
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                adv(1, &mut i, &mut line, &mut col);
            }
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            adv(2, &mut i, &mut line, &mut col);
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                adv(1, &mut i, &mut line, &mut col);
            }
            if i >= chars.len() {
                return Err(err(sl, sc, "unterminated comment"));
            }
            adv(2, &mut i, &mut line, &mut col);
            continue;
        }
        let push = |out: &mut Vec<Token>, tok| {
            out.push(Token {
                tok,
                line: sl,
                column: sc,
            })
        };
        // `$this`, `$index`, `$total`: identifiers of the iteration.
        if c.is_alphabetic()
            || c == '_'
            || c == '$' && chars.get(i + 1).is_some_and(|c| c.is_alphabetic())
        {
            let s = i;
            if c == '$' {
                adv(1, &mut i, &mut line, &mut col);
            }
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                adv(1, &mut i, &mut line, &mut col);
            }
            push(&mut out, Tok::Ident(chars[s..i].iter().collect()));
            continue;
        }
        if c.is_ascii_digit() {
            let s = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                adv(1, &mut i, &mut line, &mut col);
            }
            if chars.get(i) == Some(&'.') && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()) {
                adv(1, &mut i, &mut line, &mut col);
                while i < chars.len() && chars[i].is_ascii_digit() {
                    adv(1, &mut i, &mut line, &mut col);
                }
                push(&mut out, Tok::Number(chars[s..i].iter().collect()));
            } else if chars.get(i) == Some(&'L')
                && !chars.get(i + 1).is_some_and(|c| c.is_alphanumeric())
            {
                let t: String = chars[s..i].iter().collect();
                adv(1, &mut i, &mut line, &mut col);
                push(&mut out, Tok::Long(t));
            } else {
                push(&mut out, Tok::Number(chars[s..i].iter().collect()));
            }
            continue;
        }
        if c == '@' {
            adv(1, &mut i, &mut line, &mut col);
            let s = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], ':' | '.' | '-' | '+'))
            {
                // A '-' or '+' is part of the literal only as a date separator or an offset.
                if matches!(chars[i], '-' | '+')
                    && !chars.get(i + 1).is_some_and(|c| c.is_ascii_digit())
                {
                    break;
                }
                if chars[i] == '.' && !chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()) {
                    break;
                }
                adv(1, &mut i, &mut line, &mut col);
            }
            let t: String = chars[s..i].iter().collect();
            if let Some(rest) = t.strip_prefix('T') {
                push(&mut out, Tok::Time(rest.to_string()));
            } else if t.is_empty() {
                return Err(err(sl, sc, "empty date/time literal"));
            } else {
                push(&mut out, Tok::DateTime(t));
            }
            continue;
        }
        if c == '\'' || c == '"' || c == '`' {
            adv(1, &mut i, &mut line, &mut col);
            let mut s = String::new();
            loop {
                let Some(&d) = chars.get(i) else {
                    return Err(err(sl, sc, "unterminated string"));
                };
                if d == c {
                    adv(1, &mut i, &mut line, &mut col);
                    break;
                }
                if d == '\\' {
                    let e = *chars
                        .get(i + 1)
                        .ok_or_else(|| err(line, col, "bad escape"))?;
                    adv(2, &mut i, &mut line, &mut col);
                    match e {
                        'n' => s.push('\n'),
                        'r' => s.push('\r'),
                        't' => s.push('\t'),
                        'f' => s.push('\u{c}'),
                        'u' => {
                            let h: String = chars.get(i..i + 4).unwrap_or(&[]).iter().collect();
                            let v = u32::from_str_radix(&h, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or_else(|| err(line, col, "bad unicode escape"))?;
                            s.push(v);
                            adv(4, &mut i, &mut line, &mut col);
                        }
                        o => s.push(o),
                    }
                    continue;
                }
                s.push(d);
                adv(1, &mut i, &mut line, &mut col);
            }
            push(
                &mut out,
                if c == '\'' {
                    Tok::Str(s)
                } else {
                    Tok::Quoted(s)
                },
            );
            continue;
        }
        let rest: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let sym = SYMS
            .iter()
            .find(|s| rest.starts_with(**s))
            .ok_or_else(|| err(sl, sc, &format!("unexpected character '{c}'")))?;
        adv(sym.len(), &mut i, &mut line, &mut col);
        push(&mut out, Tok::Sym(sym));
    }
    out.push(Token {
        tok: Tok::Eof,
        line,
        column: col,
    });
    Ok(out)
}
