//! Message delimiters (MSH-1 and MSH-2).

use crate::error::ParseError;

/// The delimiters of one message: field separator (MSH-1) and the encoding characters of
/// MSH-2 (component, repetition, escape, sub-component and, from v2.7, the optional
/// truncation character).
///
/// ```
/// use hl7v2::Delimiters;
/// let d = Delimiters::default();
/// assert_eq!(d.field(), b'|');
/// assert_eq!(d.encoding_characters(), b"^~\\&");
/// let custom = Delimiters::new(b'#', b'$', b'%', b'!', b'@').unwrap();
/// assert_eq!(custom.encoding_characters(), b"$%!@");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delimiters {
    field: u8,
    component: u8,
    repetition: u8,
    escape: u8,
    subcomponent: u8,
    truncation: Option<u8>,
    /// MSH-2 as written, so that writers reproduce it without recomputing.
    enc: [u8; 5],
}

impl Default for Delimiters {
    fn default() -> Self {
        Delimiters {
            field: b'|',
            component: b'^',
            repetition: b'~',
            escape: b'\\',
            subcomponent: b'&',
            truncation: None,
            enc: *b"^~\\&\0",
        }
    }
}

/// A delimiter must be printable ASCII punctuation: letters and digits would be read as
/// data, control characters include the segment terminators, and bytes above 0x7F can be
/// part of multi-byte characters.
pub(crate) fn is_valid_delimiter(b: u8) -> bool {
    b.is_ascii_graphic() && !b.is_ascii_alphanumeric()
}

impl Delimiters {
    /// Delimiters with the given characters and no truncation character.
    ///
    /// Fails if a character is alphanumeric, a control character, non-ASCII, or used twice.
    pub fn new(
        field: u8,
        component: u8,
        repetition: u8,
        escape: u8,
        subcomponent: u8,
    ) -> Result<Self, ParseError> {
        Self::build(field, [component, repetition, escape, subcomponent], None)
    }

    /// The same delimiters with a v2.7 truncation character (the 5th character of MSH-2).
    pub fn with_truncation(self, truncation: u8) -> Result<Self, ParseError> {
        Self::build(
            self.field,
            [
                self.component,
                self.repetition,
                self.escape,
                self.subcomponent,
            ],
            Some(truncation),
        )
    }

    fn build(field: u8, enc4: [u8; 4], truncation: Option<u8>) -> Result<Self, ParseError> {
        if !is_valid_delimiter(field) {
            return Err(ParseError::InvalidFieldSeparator { byte: field });
        }
        let mut all = [field, enc4[0], enc4[1], enc4[2], enc4[3], 0];
        let mut n = 5;
        if let Some(t) = truncation {
            all[5] = t;
            n = 6;
        }
        for (i, &b) in all.iter().take(n).enumerate().skip(1) {
            if !is_valid_delimiter(b) {
                return Err(ParseError::InvalidEncodingCharacter {
                    byte: b,
                    position: i,
                });
            }
        }
        for i in 0..n {
            for j in (i + 1)..n {
                if all.get(i) == all.get(j) {
                    return Err(ParseError::DuplicateDelimiter {
                        byte: all.get(i).copied().unwrap_or(0),
                    });
                }
            }
        }
        Ok(Delimiters {
            field,
            component: enc4[0],
            repetition: enc4[1],
            escape: enc4[2],
            subcomponent: enc4[3],
            truncation,
            enc: [enc4[0], enc4[1], enc4[2], enc4[3], truncation.unwrap_or(0)],
        })
    }

    /// Field separator (MSH-1), usually `|`.
    pub fn field(&self) -> u8 {
        self.field
    }
    /// Component separator, usually `^`.
    pub fn component(&self) -> u8 {
        self.component
    }
    /// Repetition separator, usually `~`.
    pub fn repetition(&self) -> u8 {
        self.repetition
    }
    /// Escape character, usually `\`.
    pub fn escape(&self) -> u8 {
        self.escape
    }
    /// Sub-component separator, usually `&`.
    pub fn subcomponent(&self) -> u8 {
        self.subcomponent
    }
    /// Truncation character (v2.7+, usually `#`), if MSH-2 declared one.
    pub fn truncation(&self) -> Option<u8> {
        self.truncation
    }

    /// MSH-2 as it is written: 4 characters, or 5 with a truncation character.
    pub fn encoding_characters(&self) -> &[u8] {
        let n = if self.truncation.is_some() { 5 } else { 4 };
        self.enc.get(..n).unwrap_or(&self.enc)
    }

    /// MSH-1 as a one-byte slice.
    pub(crate) fn field_slice(&self) -> &[u8] {
        std::slice::from_ref(&self.field)
    }

    /// True if `b` is one of the delimiters (not counting the segment terminator).
    pub fn is_delimiter(&self, b: u8) -> bool {
        b == self.field
            || b == self.component
            || b == self.repetition
            || b == self.escape
            || b == self.subcomponent
            || Some(b) == self.truncation
    }

    /// Reads MSH-1/MSH-2 from the start of a message that begins with `MSH`.
    ///
    /// Returns the delimiters and the length of MSH-2.
    pub(crate) fn from_msh(input: &[u8]) -> Result<(Self, usize), ParseError> {
        let field = match input.get(3) {
            Some(&b) => b,
            None => return Err(ParseError::MshTooShort { len: input.len() }),
        };
        if !is_valid_delimiter(field) {
            return Err(ParseError::InvalidFieldSeparator { byte: field });
        }
        let rest = input.get(4..).unwrap_or(&[]);
        let enc_len = rest
            .iter()
            .position(|&b| b == field || b == b'\r' || b == b'\n')
            .unwrap_or(rest.len());
        if enc_len < 4 {
            return Err(ParseError::EncodingCharactersTooShort { found: enc_len });
        }
        if enc_len > 5 {
            // Either MSH-2 is garbage or the field separator after it is missing; the
            // offset points at the first byte that should have been the separator.
            return Err(ParseError::FieldSeparatorMissing { offset: 4 + 5 });
        }
        let e = |i: usize| rest.get(i).copied().unwrap_or(0);
        let truncation = if enc_len == 5 { Some(e(4)) } else { None };
        let d = Self::build(field, [e(0), e(1), e(2), e(3)], truncation)?;
        Ok((d, enc_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_custom() {
        let d = Delimiters::default();
        assert_eq!(d.encoding_characters(), b"^~\\&");
        assert!(d.is_delimiter(b'~'));
        assert!(!d.is_delimiter(b'a'));
        let (d, n) = Delimiters::from_msh(b"MSH#$%!@#X").unwrap();
        assert_eq!(n, 4);
        assert_eq!(
            (
                d.field(),
                d.component(),
                d.repetition(),
                d.escape(),
                d.subcomponent()
            ),
            (b'#', b'$', b'%', b'!', b'@')
        );
        let (d, n) = Delimiters::from_msh(b"MSH|^~\\&#|A").unwrap();
        assert_eq!(n, 5);
        assert_eq!(d.truncation(), Some(b'#'));
        assert_eq!(d.encoding_characters(), b"^~\\&#");
    }

    #[test]
    fn rejects_bad_delimiters() {
        assert!(matches!(
            Delimiters::from_msh(b"MSH"),
            Err(ParseError::MshTooShort { .. })
        ));
        assert!(matches!(
            Delimiters::from_msh(b"MSHA^~\\&"),
            Err(ParseError::InvalidFieldSeparator { byte: b'A' })
        ));
        assert!(matches!(
            Delimiters::from_msh(b"MSH|^~"),
            Err(ParseError::EncodingCharactersTooShort { found: 2 })
        ));
        assert!(matches!(
            Delimiters::from_msh(b"MSH|^^\\&|"),
            Err(ParseError::DuplicateDelimiter { byte: b'^' })
        ));
        assert!(matches!(
            Delimiters::from_msh(b"MSH|^~\\&#XY|"),
            Err(ParseError::FieldSeparatorMissing { .. })
        ));
        assert!(matches!(
            Delimiters::from_msh(b"MSH|^~A&|"),
            Err(ParseError::InvalidEncodingCharacter {
                byte: b'A',
                position: 3
            })
        ));
        assert!(Delimiters::new(b'|', b'^', b'~', b'\\', b'|').is_err());
        assert!(Delimiters::default().with_truncation(b'^').is_err());
    }
}
