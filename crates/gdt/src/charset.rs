//! The character sets of field 9206 and their single-byte encodings.
//!
//! GDT counts line and record lengths in encoded bytes, so every supported character
//! set is single-byte: one character is one byte, in both directions.

use std::fmt;

use oem_cp::code_table::{DECODING_TABLE_CP437, ENCODING_TABLE_CP437};

/// A character set a GDT record can be encoded in.
///
/// Field 9206 names it: `1` is 7-bit ([`Charset::Ascii7`]), `2` the IBM PC code page
/// 437 ([`Charset::Cp437`], also the default when 9206 is absent) and `3` "ANSI", which
/// this crate reads as ISO 8859-1 ([`Charset::Latin1`]) unless told otherwise (see
/// [`ParseOptions::ansi_charset`](crate::ParseOptions::ansi_charset)): implementations
/// disagree whether "ANSI" means ISO 8859-1, ISO 8859-15 or Windows-1252, and they
/// only differ in the euro sign and a few rare letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Charset {
    /// 7-bit code in the German reference version of DIN 66003: ASCII, except that
    /// `@ [ \ ] { | } ~` stand for `§ Ä Ö Ü ä ö ü ß`. Bytes above 0x7F are an error.
    Ascii7,
    /// IBM PC code page 437 ("8-bit IBM standard"), the GDT default.
    Cp437,
    /// ISO 8859-1 (Latin-1): byte `n` is U+00`n` — no euro sign.
    Latin1,
    /// ISO 8859-15 (Latin-9): Latin-1 with `€ Š š Ž ž Œ œ Ÿ` in place of eight rare
    /// symbols. Not a code of its own in 9206; selectable for senders that mean it by 3.
    Latin9,
    /// Windows-1252, the Windows "ANSI" code page: Latin-1 plus printable characters
    /// (`€ „ “ ” – —` …) in 0x80–0x9F. Selectable like [`Charset::Latin9`].
    Windows1252,
}

impl Charset {
    /// The charset a 9206 value names; `ansi` is what `3` stands for. `None` for any
    /// other value. Surrounding spaces are ignored.
    pub fn from_code(value: &str, ansi: Charset) -> Option<Charset> {
        match value.trim() {
            "1" => Some(Charset::Ascii7),
            "2" => Some(Charset::Cp437),
            "3" => Some(ansi),
            _ => None,
        }
    }

    /// The 9206 value that declares this charset (`"3"` for all ANSI variants).
    pub fn code(self) -> &'static str {
        match self {
            Charset::Ascii7 => "1",
            Charset::Cp437 => "2",
            Charset::Latin1 | Charset::Latin9 | Charset::Windows1252 => "3",
        }
    }

    /// Decodes bytes, appending to `out`. Returns the first byte that has no meaning
    /// in the charset (only possible for [`Charset::Ascii7`], where bytes above 0x7F
    /// are invalid).
    pub(crate) fn decode_into(self, bytes: &[u8], out: &mut String) -> Result<(), u8> {
        // Plain ASCII means the same in every charset but the 7-bit one, where eight
        // punctuation bytes are umlauts: most content is ASCII, so this is the fast path.
        if self != Charset::Ascii7
            && bytes.is_ascii()
            && let Ok(s) = std::str::from_utf8(bytes)
        {
            out.push_str(s);
            return Ok(());
        }
        out.reserve(bytes.len());
        match self {
            Charset::Ascii7 => {
                for &b in bytes {
                    out.push(din66003_decode(b).ok_or(b)?);
                }
            }
            Charset::Cp437 => {
                for &b in bytes {
                    out.push(cp437_decode(b));
                }
            }
            Charset::Latin1 => out.extend(bytes.iter().map(|&b| char::from(b))),
            Charset::Latin9 => decode_encoding_rs(encoding_rs::ISO_8859_15, bytes, out),
            Charset::Windows1252 => decode_encoding_rs(encoding_rs::WINDOWS_1252, bytes, out),
        }
        Ok(())
    }

    /// Decodes bytes to a new string. Fails with the first byte that has no meaning in
    /// the charset (only possible for [`Charset::Ascii7`], where bytes above 0x7F are
    /// invalid).
    pub fn decode(self, bytes: &[u8]) -> Result<String, u8> {
        let mut s = String::with_capacity(bytes.len());
        self.decode_into(bytes, &mut s)?;
        Ok(s)
    }

    /// The byte for a character, `None` when the charset cannot represent it.
    pub fn encode_char(self, ch: char) -> Option<u8> {
        match self {
            Charset::Ascii7 => din66003_encode(ch),
            Charset::Cp437 => {
                if ch.is_ascii() {
                    Some(ch as u8)
                } else {
                    ENCODING_TABLE_CP437.get(&ch).copied()
                }
            }
            Charset::Latin1 => u8::try_from(u32::from(ch)).ok(),
            Charset::Latin9 => latin9_encode(ch),
            Charset::Windows1252 => windows1252_encode(ch),
        }
    }

    /// Encodes a string, appending to `out`; on a character the charset cannot
    /// represent either writes `replacement` or, when that is `None`, stops and returns
    /// the character (`out` then holds the bytes before it).
    pub fn encode_into(
        self,
        text: &str,
        out: &mut Vec<u8>,
        replacement: Option<u8>,
    ) -> Result<(), char> {
        if self != Charset::Ascii7 && text.is_ascii() {
            out.extend_from_slice(text.as_bytes());
            return Ok(());
        }
        out.reserve(text.len());
        for ch in text.chars() {
            match (self.encode_char(ch), replacement) {
                (Some(b), _) | (None, Some(b)) => out.push(b),
                (None, None) => return Err(ch),
            }
        }
        Ok(())
    }

    /// Whether every character of `text` can be written in this charset.
    pub fn can_encode(self, text: &str) -> bool {
        text.chars().all(|c| self.encode_char(c).is_some())
    }
}

impl fmt::Display for Charset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Charset::Ascii7 => "7-bit (DIN 66003)",
            Charset::Cp437 => "IBM CP437",
            Charset::Latin1 => "ISO 8859-1",
            Charset::Latin9 => "ISO 8859-15",
            Charset::Windows1252 => "Windows-1252",
        })
    }
}

/// DIN 66003 German reference version: the eight national positions of ISO 646.
const DIN66003: [(u8, char); 8] = [
    (b'@', '§'),
    (b'[', 'Ä'),
    (b'\\', 'Ö'),
    (b']', 'Ü'),
    (b'{', 'ä'),
    (b'|', 'ö'),
    (b'}', 'ü'),
    (b'~', 'ß'),
];

fn din66003_decode(b: u8) -> Option<char> {
    if b > 0x7F {
        return None;
    }
    Some(
        DIN66003
            .iter()
            .find(|(x, _)| *x == b)
            .map_or(char::from(b), |(_, c)| *c),
    )
}

fn din66003_encode(ch: char) -> Option<u8> {
    if let Some((b, _)) = DIN66003.iter().find(|(_, c)| *c == ch) {
        return Some(*b);
    }
    // The ASCII characters whose positions DIN 66003 took have no code left.
    if ch.is_ascii() && !DIN66003.iter().any(|(b, _)| char::from(*b) == ch) {
        return Some(ch as u8);
    }
    None
}

fn cp437_decode(b: u8) -> char {
    match b.checked_sub(0x80) {
        None => char::from(b),
        Some(i) => DECODING_TABLE_CP437
            .get(usize::from(i))
            .copied()
            .unwrap_or(char::REPLACEMENT_CHARACTER),
    }
}

/// The eight positions where ISO 8859-15 differs from ISO 8859-1.
const LATIN9_DIFF: [(u8, char); 8] = [
    (0xA4, '€'),
    (0xA6, 'Š'),
    (0xA8, 'š'),
    (0xB4, 'Ž'),
    (0xB8, 'ž'),
    (0xBC, 'Œ'),
    (0xBD, 'œ'),
    (0xBE, 'Ÿ'),
];

fn latin9_encode(ch: char) -> Option<u8> {
    if let Some((b, _)) = LATIN9_DIFF.iter().find(|(_, c)| *c == ch) {
        return Some(*b);
    }
    let b = u8::try_from(u32::from(ch)).ok()?;
    // The Latin-1 characters Latin-9 replaced are gone.
    (!LATIN9_DIFF.iter().any(|(x, _)| *x == b)).then_some(b)
}

fn windows1252_encode(ch: char) -> Option<u8> {
    let mut buf = [0u8; 4];
    let s: &str = ch.encode_utf8(&mut buf);
    let (bytes, _, had_errors) = encoding_rs::WINDOWS_1252.encode(s);
    match (had_errors, bytes.as_ref()) {
        (false, [b]) => Some(*b),
        _ => None,
    }
}

fn decode_encoding_rs(enc: &'static encoding_rs::Encoding, bytes: &[u8], out: &mut String) {
    // Every byte of ISO 8859-15 and Windows-1252 decodes (WHATWG maps the undefined
    // Windows-1252 bytes to C1 controls), so replacement never happens.
    let (text, _) = enc.decode_without_bom_handling(bytes);
    out.push_str(&text);
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Charset; 5] = [
        Charset::Ascii7,
        Charset::Cp437,
        Charset::Latin1,
        Charset::Latin9,
        Charset::Windows1252,
    ];

    #[test]
    fn codes() {
        assert_eq!(
            Charset::from_code("1", Charset::Latin1),
            Some(Charset::Ascii7)
        );
        assert_eq!(
            Charset::from_code(" 2", Charset::Latin1),
            Some(Charset::Cp437)
        );
        assert_eq!(
            Charset::from_code("3", Charset::Latin9),
            Some(Charset::Latin9)
        );
        assert_eq!(Charset::from_code("4", Charset::Latin1), None);
        assert_eq!(Charset::from_code("", Charset::Latin1), None);
        for c in ALL {
            assert_eq!(Charset::from_code(c.code(), c), Some(c));
        }
    }

    #[test]
    fn cp437_umlauts() {
        assert_eq!(
            Charset::Cp437.decode(&[0x81, 0x94, 0xE1, 0x84, 0x8E, 0x99, 0x9A]),
            Ok("üößäÄÖÜ".to_string())
        );
        let mut v = Vec::new();
        Charset::Cp437.encode_into("Müller", &mut v, None).unwrap();
        assert_eq!(v, b"M\x81ller");
        assert_eq!(Charset::Cp437.encode_char('€'), None);
    }

    #[test]
    fn latin1_latin9_windows1252() {
        assert_eq!(Charset::Latin1.decode(&[0xFC]), Ok("ü".into()));
        assert_eq!(Charset::Latin1.decode(&[0xA4]), Ok("¤".into()));
        assert_eq!(Charset::Latin9.decode(&[0xA4]), Ok("€".into()));
        assert_eq!(Charset::Latin9.decode(&[0xFC]), Ok("ü".into()));
        assert_eq!(Charset::Windows1252.decode(&[0x80]), Ok("€".into()));
        assert_eq!(Charset::Latin1.decode(&[0x80]), Ok("\u{80}".into()));
        assert_eq!(Charset::Latin1.encode_char('€'), None);
        assert_eq!(Charset::Latin9.encode_char('€'), Some(0xA4));
        assert_eq!(Charset::Latin9.encode_char('¤'), None);
        assert_eq!(Charset::Windows1252.encode_char('€'), Some(0x80));
        assert_eq!(Charset::Windows1252.encode_char('Ā'), None);
    }

    #[test]
    fn din66003() {
        assert_eq!(
            Charset::Ascii7.decode(b"M}ller, K|ln, Stra~e [\\]{@"),
            Ok("Müller, Köln, Straße ÄÖÜä§".into())
        );
        assert_eq!(Charset::Ascii7.decode(&[b'a', 0xFC]), Err(0xFC));
        assert_eq!(Charset::Ascii7.encode_char('['), None);
        assert_eq!(Charset::Ascii7.encode_char('ß'), Some(b'~'));
        assert_eq!(Charset::Ascii7.encode_char('é'), None);
    }

    /// Every byte decodes to one char that encodes back to the same byte.
    #[test]
    fn single_byte_bijection() {
        for c in ALL {
            let top = if c == Charset::Ascii7 { 0x80 } else { 0x100 };
            for b in 0..top {
                let b = u8::try_from(b).unwrap();
                let s = c.decode(&[b]).unwrap();
                assert_eq!(s.chars().count(), 1, "{c} {b:#x}");
                let ch = s.chars().next().unwrap();
                assert_eq!(c.encode_char(ch), Some(b), "{c} {b:#x} {ch:?}");
            }
        }
    }
}
