//! Field paths such as `PID-5.1`, `OBX(3)-5`, `PID-11[2].3` or `PID-3[*]`.

use std::fmt;
use std::str::FromStr;

use crate::error::PathError;

/// Which repetition(s) of a field a [`Path`] selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Repetition {
    /// One repetition, 1-based (`PID-3[2]`).
    Nth(usize),
    /// All repetitions (`PID-3[*]`).
    All,
}

/// A location in a message, parsed once and reusable: `SEG[(n)]-FIELD[[rep]][.COMP[.SUB]]`.
///
/// * Indexes are 1-based, as the standard writes them.
/// * `OBX(3)-5` is field 5 of the third OBX segment (default: the first).
/// * `PID-3[2]` is the second repetition, `PID-3[*]` all of them.
/// * Without `[..]`, a path that names a component (`PID-3.1`) reads the first
///   repetition, and a path that names only the field (`PID-3`) reads the whole field,
///   all repetitions included.
/// * `MSH-1` is the field separator itself, `MSH-2` the encoding characters and `MSH-3`
///   the first field after them (as in the standard).
/// * `.` is accepted instead of `-` (`PID.5.1`).
///
/// ```
/// use hl7v2::{Path, path::Repetition};
/// let p: Path = "OBX(3)-5[2].1.2".parse().unwrap();
/// assert_eq!(p.segment(), "OBX");
/// assert_eq!(p.segment_index(), 3);
/// assert_eq!(p.field(), 5);
/// assert_eq!(p.repetition(), Some(Repetition::Nth(2)));
/// assert_eq!(p.component(), Some(1));
/// assert_eq!(p.subcomponent(), Some(2));
/// assert_eq!(p.to_string(), "OBX(3)-5[2].1.2");
/// assert!("PID-0".parse::<Path>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Path {
    segment: [u8; 3],
    segment_index: usize,
    field: usize,
    repetition: Option<Repetition>,
    component: Option<usize>,
    subcomponent: Option<usize>,
}

pub(crate) fn valid_segment_id(id: &[u8]) -> bool {
    id.len() == 3
        && id
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

impl Path {
    /// A path to a whole field of the first segment with this id.
    pub fn new(segment: &str, field: usize) -> Result<Self, PathError> {
        let id = segment.as_bytes();
        if !valid_segment_id(id) {
            return Err(PathError::InvalidSegment(segment.to_string()));
        }
        if field == 0 {
            return Err(PathError::InvalidIndex {
                what: "field",
                path: format!("{segment}-0"),
            });
        }
        let mut seg = [0u8; 3];
        seg.copy_from_slice(id);
        Ok(Path {
            segment: seg,
            segment_index: 1,
            field,
            repetition: None,
            component: None,
            subcomponent: None,
        })
    }

    /// Selects the `n`th segment with this id (1-based; 0 is treated as 1).
    pub fn with_segment_index(mut self, n: usize) -> Self {
        self.segment_index = n.max(1);
        self
    }
    /// Selects one repetition (1-based; 0 is treated as 1).
    pub fn with_repetition(mut self, n: usize) -> Self {
        self.repetition = Some(Repetition::Nth(n.max(1)));
        self
    }
    /// Selects all repetitions (for [`Message::get_all`](crate::Message::get_all)).
    pub fn all_repetitions(mut self) -> Self {
        self.repetition = Some(Repetition::All);
        self
    }
    /// Selects a component (1-based; 0 is treated as 1).
    pub fn with_component(mut self, n: usize) -> Self {
        self.component = Some(n.max(1));
        self
    }
    /// Selects a sub-component (1-based; 0 is treated as 1). Implies component 1 if
    /// none was chosen.
    pub fn with_subcomponent(mut self, n: usize) -> Self {
        if self.component.is_none() {
            self.component = Some(1);
        }
        self.subcomponent = Some(n.max(1));
        self
    }

    /// The segment id, e.g. `"PID"`.
    pub fn segment(&self) -> &str {
        std::str::from_utf8(&self.segment).unwrap_or("")
    }
    pub(crate) fn segment_bytes(&self) -> &[u8; 3] {
        &self.segment
    }
    /// Which occurrence of the segment (1-based).
    pub fn segment_index(&self) -> usize {
        self.segment_index
    }
    /// The field number (1-based; for MSH, 1 is the field separator).
    pub fn field(&self) -> usize {
        self.field
    }
    /// The repetition selector, if any.
    pub fn repetition(&self) -> Option<Repetition> {
        self.repetition
    }
    /// The component number, if any.
    pub fn component(&self) -> Option<usize> {
        self.component
    }
    /// The sub-component number, if any.
    pub fn subcomponent(&self) -> Option<usize> {
        self.subcomponent
    }

    /// The same path without repetition, component and sub-component: the whole field.
    pub fn field_path(&self) -> Path {
        Path {
            repetition: None,
            component: None,
            subcomponent: None,
            ..self.clone()
        }
    }
}

fn parse_index(s: &str, what: &'static str, whole: &str) -> Result<usize, PathError> {
    let bad = || PathError::InvalidIndex {
        what,
        path: whole.to_string(),
    };
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match s.parse::<usize>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(n) => Ok(n),
    }
}

impl FromStr for Path {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, PathError> {
        let syntax = || PathError::Syntax(s.to_string());
        let t = s.trim();
        let id = t.get(..3).ok_or_else(syntax)?;
        let mut path = Path::new(id, 1).map_err(|_| PathError::InvalidSegment(s.to_string()))?;
        let mut rest = t.get(3..).ok_or_else(syntax)?;
        if let Some(r) = rest.strip_prefix('(') {
            let close = r.find(')').ok_or_else(syntax)?;
            path.segment_index = parse_index(r.get(..close).unwrap_or(""), "segment index", s)?;
            rest = r.get(close + 1..).unwrap_or("");
        }
        rest = rest
            .strip_prefix('-')
            .or_else(|| rest.strip_prefix('.'))
            .ok_or_else(syntax)?;
        let field_end = rest.find(['[', '.']).unwrap_or(rest.len());
        path.field = parse_index(rest.get(..field_end).unwrap_or(""), "field", s)?;
        rest = rest.get(field_end..).unwrap_or("");
        if let Some(r) = rest.strip_prefix('[') {
            let close = r.find(']').ok_or_else(syntax)?;
            let inner = r.get(..close).unwrap_or("");
            path.repetition = Some(if inner == "*" {
                Repetition::All
            } else {
                Repetition::Nth(parse_index(inner, "repetition", s)?)
            });
            rest = r.get(close + 1..).unwrap_or("");
        }
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find('.').unwrap_or(r.len());
            path.component = Some(parse_index(r.get(..end).unwrap_or(""), "component", s)?);
            rest = r.get(end..).unwrap_or("");
            if let Some(r) = rest.strip_prefix('.') {
                path.subcomponent = Some(parse_index(r, "sub-component", s)?);
                rest = "";
            }
        }
        if !rest.is_empty() {
            return Err(syntax());
        }
        Ok(path)
    }
}

impl TryFrom<&str> for Path {
    type Error = PathError;
    fn try_from(s: &str) -> Result<Self, PathError> {
        s.parse()
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.segment())?;
        if self.segment_index != 1 {
            write!(f, "({})", self.segment_index)?;
        }
        write!(f, "-{}", self.field)?;
        match self.repetition {
            Some(Repetition::Nth(n)) => write!(f, "[{n}]")?,
            Some(Repetition::All) => f.write_str("[*]")?,
            None => {}
        }
        if let Some(c) = self.component {
            write!(f, ".{c}")?;
        }
        if let Some(s) = self.subcomponent {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        let p: Path = "PID-5.1".parse().unwrap();
        assert_eq!((p.segment(), p.field(), p.component()), ("PID", 5, Some(1)));
        assert_eq!(p.repetition(), None);
        let p: Path = "PID-11[2].3".parse().unwrap();
        assert_eq!(p.repetition(), Some(Repetition::Nth(2)));
        assert_eq!(p.component(), Some(3));
        let p: Path = "OBX(3)-5".parse().unwrap();
        assert_eq!(p.segment_index(), 3);
        let p: Path = "PID-3.4.1".parse().unwrap();
        assert_eq!((p.component(), p.subcomponent()), (Some(4), Some(1)));
        let p: Path = "PID-3[*]".parse().unwrap();
        assert_eq!(p.repetition(), Some(Repetition::All));
        let p: Path = "PID.5.1".parse().unwrap();
        assert_eq!((p.field(), p.component()), (5, Some(1)));
        let p: Path = "ZX1-2".parse().unwrap();
        assert_eq!(p.segment(), "ZX1");
    }

    #[test]
    fn rejects_bad() {
        for s in [
            "",
            "P",
            "PI",
            "pid-5",
            "PID",
            "PID-",
            "PID-0",
            "PID-5.0",
            "PID-5[0]",
            "PID-5[",
            "PID-5[x]",
            "PID(0)-5",
            "PID(1-5",
            "PID-5.1.2.3",
            "PID-5x",
            "PIDX-5",
            "PID-5.",
            "PID-99999999999999999999",
            "ÄBC-1",
            "PID-5[*",
        ] {
            assert!(s.parse::<Path>().is_err(), "{s}");
        }
    }

    #[test]
    fn display_round_trip() {
        for s in [
            "PID-5",
            "OBX(3)-5[2].1.2",
            "MSH-9.2",
            "PID-3[*]",
            "PID-3[1].1",
        ] {
            assert_eq!(s.parse::<Path>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn builder() {
        let p = Path::new("OBX", 5)
            .unwrap()
            .with_segment_index(2)
            .with_repetition(1)
            .with_subcomponent(3);
        assert_eq!(p.to_string(), "OBX(2)-5[1].1.3");
        assert!(Path::new("obx", 1).is_err());
        assert!(Path::new("OBX", 0).is_err());
        assert_eq!(p.field_path().to_string(), "OBX(2)-5");
    }
}
