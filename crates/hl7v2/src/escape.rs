//! HL7 escape sequences.
//!
//! Decoding ([`unescape`]) handles:
//!
//! | sequence | becomes |
//! |---|---|
//! | `\F\ \S\ \T\ \R\ \E\` | field, component, sub-component, repetition separator, escape character |
//! | `\P\` | truncation character (only when MSH-2 declares one, v2.7+) |
//! | `\Xhh…\` | the bytes given in hex (an even number of hex digits) |
//! | `\.br\` | a line feed `\n` |
//!
//! Everything else (`\H\`, `\N\`, `\Zxx\`, `\Cxxyy\`, `\Mxxyy\`, `\.sp\`, `\.in+4\`,
//! malformed hex, an unterminated sequence) is kept verbatim, escape characters included,
//! because its meaning depends on the receiving application.
//!
//! `\.br\` decodes to LF (not CR) so that decoded text can be displayed or stored as is;
//! CR is the segment terminator, so a decoded value with CRs could not be pasted back
//! into a message anyway. Encoding ([`escape`]) writes every line break (LF, CRLF or a
//! lone CR) as `\.br\`, so `unescape(escape(x)) == x` for every `x` without CR, and line
//! breaks are normalised to LF otherwise.
//!
//! Both functions borrow their input when nothing needs to change.

use std::borrow::Cow;

use crate::Delimiters;
use crate::scan::find_byte;

/// Decodes the escape sequences of a raw value (see the module docs for the rules).
///
/// ```
/// use hl7v2::{Delimiters, escape::unescape};
/// let d = Delimiters::default();
/// assert_eq!(&*unescape(b"A\\S\\B\\T\\C", &d), b"A^B&C");
/// assert_eq!(&*unescape(b"\\X48C3A9\\", &d), "Hé".as_bytes());
/// assert_eq!(&*unescape(b"line1\\.br\\line2", &d), b"line1\nline2");
/// assert_eq!(&*unescape(b"\\H\\bold\\N\\", &d), b"\\H\\bold\\N\\");
/// ```
pub fn unescape<'a>(raw: &'a [u8], delims: &Delimiters) -> Cow<'a, [u8]> {
    let esc = delims.escape();
    let Some(first) = find_byte(raw, esc) else {
        return Cow::Borrowed(raw);
    };
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(raw.get(..first).unwrap_or(&[]));
    let mut rest = raw.get(first..).unwrap_or(&[]);
    while !rest.is_empty() {
        // `rest` starts with the escape character here.
        let body_and_after = rest.get(1..).unwrap_or(&[]);
        let Some(close) = find_byte(body_and_after, esc) else {
            // Unterminated: not an escape sequence, keep it.
            out.extend_from_slice(rest);
            break;
        };
        let body = body_and_after.get(..close).unwrap_or(&[]);
        let seq_len = close + 2;
        decode_sequence(body, rest.get(..seq_len).unwrap_or(&[]), delims, &mut out);
        rest = rest.get(seq_len..).unwrap_or(&[]);
        match find_byte(rest, esc) {
            Some(next) => {
                out.extend_from_slice(rest.get(..next).unwrap_or(&[]));
                rest = rest.get(next..).unwrap_or(&[]);
            }
            None => {
                out.extend_from_slice(rest);
                break;
            }
        }
    }
    Cow::Owned(out)
}

fn decode_sequence(body: &[u8], whole: &[u8], d: &Delimiters, out: &mut Vec<u8>) {
    match body {
        b"F" => out.push(d.field()),
        b"S" => out.push(d.component()),
        b"T" => out.push(d.subcomponent()),
        b"R" => out.push(d.repetition()),
        b"E" => out.push(d.escape()),
        b"P" if d.truncation().is_some() => out.push(d.truncation().unwrap_or_default()),
        b".br" => out.push(b'\n'),
        [b'X', hex @ ..] if !hex.is_empty() && hex.len() % 2 == 0 => {
            let start = out.len();
            for pair in hex.chunks_exact(2) {
                match (hex_val(pair.first()), hex_val(pair.get(1))) {
                    (Some(h), Some(l)) => out.push((h << 4) | l),
                    _ => {
                        out.truncate(start);
                        out.extend_from_slice(whole);
                        return;
                    }
                }
            }
        }
        _ => out.extend_from_slice(whole),
    }
}

fn hex_val(b: Option<&u8>) -> Option<u8> {
    match b? {
        b @ b'0'..=b'9' => Some(b - b'0'),
        b @ b'a'..=b'f' => Some(b - b'a' + 10),
        b @ b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[inline]
fn needs_escape(b: u8, d: &Delimiters) -> bool {
    d.is_delimiter(b) || b == b'\r' || b == b'\n'
}

/// Encodes a value for writing: delimiters become `\F\ \S\ \T\ \R\ \E\` (and `\P\` for
/// the truncation character), line breaks become `\.br\`.
///
/// Note that the HL7 null `""` cannot be escaped (HL7 has no escape for `"`): escaping
/// `""` yields `""`, which a reader takes as null. That is usually what is meant.
///
/// ```
/// use hl7v2::{Delimiters, escape::{escape, unescape}};
/// let d = Delimiters::default();
/// assert_eq!(&*escape(b"Fish & Chips | 2^3", &d), b"Fish \\T\\ Chips \\F\\ 2\\S\\3");
/// assert_eq!(&*escape(b"a\r\nb", &d), b"a\\.br\\b");
/// let text = b"C:\\path ~ x";
/// assert_eq!(&*unescape(&escape(text, &d), &d), text);
/// ```
pub fn escape<'a>(value: &'a [u8], delims: &Delimiters) -> Cow<'a, [u8]> {
    if !value.iter().any(|&b| needs_escape(b, delims)) {
        return Cow::Borrowed(value);
    }
    let mut out = Vec::with_capacity(value.len() + 16);
    escape_into(value, delims, &mut out);
    Cow::Owned(out)
}

/// [`escape`] appending to a buffer.
pub fn escape_into(value: &[u8], d: &Delimiters, out: &mut Vec<u8>) {
    let esc = d.escape();
    let push_seq = |out: &mut Vec<u8>, code: &[u8]| {
        out.push(esc);
        out.extend_from_slice(code);
        out.push(esc);
    };
    let mut iter = value.iter().copied().peekable();
    while let Some(b) = iter.next() {
        if !needs_escape(b, d) {
            out.push(b);
        } else if b == d.field() {
            push_seq(out, b"F");
        } else if b == d.component() {
            push_seq(out, b"S");
        } else if b == d.subcomponent() {
            push_seq(out, b"T");
        } else if b == d.repetition() {
            push_seq(out, b"R");
        } else if b == esc {
            push_seq(out, b"E");
        } else if Some(b) == d.truncation() {
            push_seq(out, b"P");
        } else {
            // CR or LF: CRLF counts as one line break.
            if b == b'\r' && iter.peek() == Some(&b'\n') {
                iter.next();
            }
            push_seq(out, b".br");
        }
    }
}

/// [`escape`] for text.
pub fn escape_str<'a>(value: &'a str, delims: &Delimiters) -> Cow<'a, str> {
    match escape(value.as_bytes(), delims) {
        Cow::Borrowed(_) => Cow::Borrowed(value),
        // Escaping only replaces ASCII bytes with ASCII sequences, so UTF-8 stays valid;
        // the lossy conversion never actually substitutes anything.
        Cow::Owned(v) => Cow::Owned(String::from_utf8_lossy(&v).into_owned()),
    }
}

/// [`unescape`] returning text: invalid UTF-8 (e.g. ISO-8859-1 data) is replaced by
/// U+FFFD. Use [`unescape_latin1`] for ISO-8859-1 messages.
pub fn unescape_str<'a>(raw: &'a [u8], delims: &Delimiters) -> Cow<'a, str> {
    match unescape(raw, delims) {
        Cow::Borrowed(b) => String::from_utf8_lossy(b),
        Cow::Owned(v) => Cow::Owned(match String::from_utf8(v) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }),
    }
}

/// [`unescape`] reading the bytes as ISO-8859-1 (every byte is one character).
pub fn unescape_latin1(raw: &[u8], delims: &Delimiters) -> String {
    let bytes = unescape(raw, delims);
    if let Ok(ascii) = std::str::from_utf8(&bytes)
        && ascii.is_ascii()
    {
        return ascii.to_owned();
    }
    bytes.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Delimiters {
        Delimiters::default()
    }

    #[test]
    fn decodes_all_delimiters() {
        assert_eq!(&*unescape(b"\\F\\\\S\\\\T\\\\R\\\\E\\", &d()), b"|^&~\\");
    }

    #[test]
    fn borrowed_when_plain() {
        assert!(matches!(unescape(b"plain", &d()), Cow::Borrowed(_)));
        assert!(matches!(escape(b"plain", &d()), Cow::Borrowed(_)));
    }

    #[test]
    fn keeps_unknown_and_malformed() {
        for s in [
            &b"\\H\\x\\N\\"[..],
            b"\\Zlocal\\",
            b"\\C2842\\",
            b"\\M2442\\",
            b"\\.sp\\",
            b"\\X4\\",
            b"\\XZZ\\",
            b"\\X\\",
            b"\\\\",
            b"abc\\",
            b"abc\\F",
            b"\\P\\",
        ] {
            assert_eq!(&*unescape(s, &d()), s, "{}", String::from_utf8_lossy(s));
        }
    }

    #[test]
    fn hex_and_breaks() {
        assert_eq!(&*unescape(b"\\X0D0A\\", &d()), b"\r\n");
        assert_eq!(&*unescape(b"a\\.br\\b", &d()), b"a\nb");
        assert_eq!(
            &*escape(b"a\rb\nc\r\nd", &d()),
            b"a\\.br\\b\\.br\\c\\.br\\d"
        );
    }

    #[test]
    fn custom_and_truncation() {
        let c = Delimiters::new(b'#', b'$', b'%', b'!', b'@').unwrap();
        assert_eq!(&*escape(b"a#b$c%d!e@f|", &c), b"a!F!b!S!c!R!d!E!e!T!f|");
        assert_eq!(&*unescape(b"a!F!b!S!c!R!d!E!e!T!f|", &c), b"a#b$c%d!e@f|");
        let t = Delimiters::default().with_truncation(b'#').unwrap();
        assert_eq!(&*escape(b"#1", &t), b"\\P\\1");
        assert_eq!(&*unescape(b"\\P\\1", &t), b"#1");
    }

    #[test]
    fn text_helpers() {
        assert_eq!(escape_str("x^y", &d()), "x\\S\\y");
        assert_eq!(unescape_str(b"caf\\XC3A9\\", &d()), "café");
        assert_eq!(unescape_latin1(b"Impresi\xf3n", &d()), "Impresión");
        assert_eq!(
            unescape_str(b"Impresi\xf3n\\S\\", &d()),
            "Impresi\u{FFFD}n^"
        );
    }
}
