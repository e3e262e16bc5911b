//! Encodings for `encode`/`decode` (`base64`, `urlbase64`, `hex`) and `escape`/`unescape`
//! (`html`, `json`).

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64_encode(data: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let idx = ((n >> (18 - 6 * i)) & 63) as usize;
                out.push(char::from(alphabet[idx]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn b64_decode(s: &str, alphabet: &[u8; 64]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        if c == b'=' {
            break;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        let v = alphabet.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// Encodes bytes in `format` (`base64`, `urlbase64`, `hex`).
pub(crate) fn encode(data: &[u8], format: &str) -> Option<String> {
    match format {
        "base64" => Some(b64_encode(data, B64)),
        "urlbase64" => Some(b64_encode(data, B64URL)),
        "hex" => Some(data.iter().map(|b| format!("{b:02x}")).collect()),
        _ => None,
    }
}

/// Decodes text in `format` (`base64`, `urlbase64`, `hex`).
pub(crate) fn decode(s: &str, format: &str) -> Option<Vec<u8>> {
    match format {
        "base64" => b64_decode(s, B64),
        "urlbase64" => b64_decode(s, B64URL),
        "hex" => {
            if !s.len().is_multiple_of(2) {
                return None;
            }
            (0..s.len())
                .step_by(2)
                .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
                .collect()
        }
        _ => None,
    }
}

/// Escapes text for `html` or `json`.
pub(crate) fn escape(s: &str, format: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    match format {
        "html" => {
            for c in s.chars() {
                match c {
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '&' => out.push_str("&amp;"),
                    '"' => out.push_str("&quot;"),
                    '\'' => out.push_str("&#39;"),
                    c => out.push(c),
                }
            }
        }
        "json" => {
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                    c => out.push(c),
                }
            }
        }
        _ => return None,
    }
    Some(out)
}

/// Reverses [`escape`].
pub(crate) fn unescape(s: &str, format: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    match format {
        "html" => {
            let mut rest = s;
            while let Some(i) = rest.find('&') {
                out.push_str(&rest[..i]);
                rest = &rest[i..];
                let Some(end) = rest.find(';') else {
                    break;
                };
                let entity = &rest[1..end];
                let ch = match entity {
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "amp" => Some('&'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    e => e
                        .strip_prefix("#x")
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .or_else(|| e.strip_prefix('#').and_then(|d| d.parse().ok()))
                        .and_then(char::from_u32),
                };
                match ch {
                    Some(c) => {
                        out.push(c);
                        rest = &rest[end + 1..];
                    }
                    None => {
                        out.push('&');
                        rest = &rest[1..];
                    }
                }
            }
            out.push_str(rest);
        }
        "json" => {
            let mut chars = s.chars();
            while let Some(c) = chars.next() {
                if c != '\\' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    Some('t') => out.push('\t'),
                    Some('b') => out.push('\u{8}'),
                    Some('f') => out.push('\u{c}'),
                    Some('u') => {
                        let hex: String = chars.by_ref().take(4).collect();
                        out.push(
                            u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .unwrap_or('\u{fffd}'),
                        );
                    }
                    Some(other) => out.push(other),
                    None => out.push('\\'),
                }
            }
        }
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrips() {
        assert_eq!(encode(b"test", "base64").as_deref(), Some("dGVzdA=="));
        assert_eq!(
            encode(b"subjects?_d", "urlbase64").as_deref(),
            Some("c3ViamVjdHM_X2Q=")
        );
        assert_eq!(
            decode("c3ViamVjdHM/X2Q=", "base64").as_deref(),
            Some(&b"subjects?_d"[..])
        );
        assert_eq!(decode("74657374", "hex").as_deref(), Some(&b"test"[..]));
        assert_eq!(
            escape("\"1<2\"", "html").as_deref(),
            Some("&quot;1&lt;2&quot;")
        );
        assert_eq!(
            unescape("&quot;1&lt;2&quot;", "html").as_deref(),
            Some("\"1<2\"")
        );
        assert_eq!(unescape("\\\"1<2\\\"", "json").as_deref(), Some("\"1<2\""));
    }
}
