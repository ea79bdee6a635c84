//! Byte scanning helpers.
//!
//! The hot paths of the crate are "find the next segment terminator" and "find the next
//! separator". Large messages (a Base64 PDF in OBX-5 is megabytes long) make a
//! byte-at-a-time loop the bottleneck, so scanning uses `memchr` (SIMD), and nested
//! splitting stops at the enclosing separator in the same pass instead of first cutting
//! out the enclosing piece (which would scan a 2 MB component twice).

use memchr::{memchr, memchr2, memchr3};

/// Position of the first `needle` in `hay`.
#[inline]
pub(crate) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    memchr(needle, hay)
}

/// Number of occurrences of `needle` (vectorises well as a plain sum).
#[inline]
pub(crate) fn count_byte(hay: &[u8], needle: u8) -> usize {
    memchr::memchr_iter(needle, hay).count()
}

/// Up to this length a byte loop beats `memchr` for finding the n-th separator.
const SHORT: usize = 256;

/// The `n`-th piece (0-based) of `s` split by `sep`: a byte loop for short
/// segments, one vectorised pass for long ones (a Base64 PDF in OBX-5).
#[inline]
pub(crate) fn nth_piece(s: &[u8], sep: u8, n: usize) -> Option<&[u8]> {
    // Segments are mostly short, where memchr's per-call setup for every separator
    // costs more than looking at each byte.
    if s.len() <= SHORT {
        let mut count = 0;
        let mut start = 0;
        for (i, &b) in s.iter().enumerate() {
            if b == sep {
                if count == n {
                    return s.get(start..i);
                }
                count += 1;
                start = i + 1;
            }
        }
        return if count == n { s.get(start..) } else { None };
    }
    let mut seps = memchr::memchr_iter(sep, s);
    let start = if n == 0 { 0 } else { seps.nth(n - 1)? + 1 };
    let end = seps.next().unwrap_or(s.len());
    s.get(start..end)
}

/// Iterator over the pieces of `s` separated by `sep` (always yields at least one piece).
///
/// With stop bytes, the iteration ends at the first stop byte: that is how the
/// components of the *first repetition* of a field are found without looking for the
/// end of the repetition first.
#[derive(Debug, Clone)]
pub(crate) struct SplitBytes<'a> {
    rest: Option<&'a [u8]>,
    sep: u8,
    stops: Stops,
}

#[derive(Debug, Clone, Copy)]
enum Stops {
    None,
    One(u8),
    Two(u8, u8),
}

impl<'a> SplitBytes<'a> {
    #[inline]
    pub(crate) fn new(s: &'a [u8], sep: u8) -> Self {
        SplitBytes {
            rest: Some(s),
            sep,
            stops: Stops::None,
        }
    }

    /// Splits by `sep` until `stop` (exclusive).
    #[inline]
    pub(crate) fn until(s: &'a [u8], sep: u8, stop: u8) -> Self {
        SplitBytes {
            rest: Some(s),
            sep,
            stops: Stops::One(stop),
        }
    }

    /// Splits by `sep` until `stop1` or `stop2` (exclusive).
    #[inline]
    pub(crate) fn until2(s: &'a [u8], sep: u8, stop1: u8, stop2: u8) -> Self {
        SplitBytes {
            rest: Some(s),
            sep,
            stops: Stops::Two(stop1, stop2),
        }
    }
}

impl<'a> Iterator for SplitBytes<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        let hit = match self.stops {
            Stops::None => memchr(self.sep, rest),
            Stops::One(a) => memchr2(self.sep, a, rest),
            Stops::Two(a, b) => memchr3(self.sep, a, b, rest),
        };
        match hit {
            Some(i) => {
                let (piece, after) = rest.split_at(i);
                self.rest = match after.split_first() {
                    Some((&b, tail)) if b == self.sep => Some(tail),
                    _ => None,
                };
                Some(piece)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_matches_naive() {
        let mut data = vec![b'a'; 1000];
        for pos in [0usize, 1, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 500, 999] {
            data.iter_mut().for_each(|b| *b = b'a');
            data[pos] = b'|';
            assert_eq!(find_byte(&data, b'|'), Some(pos));
            assert_eq!(find_byte(&data[..pos], b'|'), None);
        }
        assert_eq!(find_byte(b"", b'|'), None);
    }

    #[test]
    fn split_pieces() {
        let v: Vec<&[u8]> = SplitBytes::new(b"a|b||c|", b'|').collect();
        assert_eq!(v, vec![&b"a"[..], b"b", b"", b"c", b""]);
        let v: Vec<&[u8]> = SplitBytes::new(b"", b'|').collect();
        assert_eq!(v, vec![&b""[..]]);
        assert_eq!(SplitBytes::new(b"a^b^c", b'^').nth(2), Some(&b"c"[..]));
        assert_eq!(SplitBytes::new(b"a^b^c", b'^').nth(3), None);
        assert_eq!(count_byte(b"a^b^c", b'^'), 2);
    }

    #[test]
    fn split_until() {
        let v: Vec<&[u8]> = SplitBytes::until(b"a^b~c^d", b'^', b'~').collect();
        assert_eq!(v, vec![&b"a"[..], b"b"]);
        let v: Vec<&[u8]> = SplitBytes::until(b"~x", b'^', b'~').collect();
        assert_eq!(v, vec![&b""[..]]);
        let v: Vec<&[u8]> = SplitBytes::until2(b"a&b^c~d", b'&', b'^', b'~').collect();
        assert_eq!(v, vec![&b"a"[..], b"b"]);
        let v: Vec<&[u8]> = SplitBytes::until2(b"a&b&", b'&', b'^', b'~').collect();
        assert_eq!(v, vec![&b"a"[..], b"b", b""]);
    }
}
