//! Filter and transformer steps: declarative, compiled once per channel.

use hl7v2::{Message, OwnedMessage, Path};

use crate::EngineError;
use crate::config::{FieldCondition, FilterConfig, TransformStep};

/// A compiled `filter` block.
pub struct Filter {
    types: Vec<(String, Option<String>)>,
    fields: Vec<(Path, Condition)>,
}

enum Condition {
    Equals(String),
    OneOf(Vec<String>),
    Present(bool),
}

impl Filter {
    pub fn new(cfg: &FilterConfig) -> Result<Self, EngineError> {
        let types = cfg
            .message_types
            .iter()
            .map(|t| match t.split_once('^') {
                Some((ty, trig)) if trig != "*" => (ty.to_string(), Some(trig.to_string())),
                Some((ty, _)) => (ty.to_string(), None),
                None => (t.clone(), None),
            })
            .collect();
        let fields = cfg
            .fields
            .iter()
            .map(|c| Ok((parse_path(&c.path)?, Condition::of(c)?)))
            .collect::<Result<_, EngineError>>()?;
        Ok(Filter { types, fields })
    }

    pub fn accepts(&self, msg: &Message<'_>) -> bool {
        let h = msg.header();
        let ty = h.message_type().map(|v| v.to_string()).unwrap_or_default();
        let trig = h.trigger_event().map(|v| v.to_string()).unwrap_or_default();
        let type_ok = self.types.is_empty()
            || self
                .types
                .iter()
                .any(|(t, tr)| (t == "*" || *t == ty) && tr.as_ref().is_none_or(|tr| *tr == trig));
        type_ok
            && self.fields.iter().all(|(path, cond)| {
                let value = field_text(msg, path);
                match cond {
                    Condition::Equals(v) => value.as_deref() == Some(v.as_str()),
                    Condition::OneOf(vs) => value.is_some_and(|x| vs.contains(&x)),
                    Condition::Present(want) => value.is_some_and(|x| !x.is_empty()) == *want,
                }
            })
    }
}

impl Condition {
    fn of(c: &FieldCondition) -> Result<Self, EngineError> {
        match (&c.equals, c.one_of.is_empty(), c.present) {
            (Some(v), true, None) => Ok(Condition::Equals(v.clone())),
            (None, false, None) => Ok(Condition::OneOf(c.one_of.clone())),
            (None, true, Some(p)) => Ok(Condition::Present(p)),
            _ => Err(EngineError::Config(format!(
                "filter on {}: give exactly one of `equals`, `one_of` or `present`",
                c.path
            ))),
        }
    }
}

/// Compiled transformer steps.
pub struct Transformer {
    steps: Vec<Step>,
}

enum Step {
    Set(Path, String),
    Copy(Path, Path),
    Clear(Path),
    RemoveSegments(String),
}

impl Transformer {
    pub fn new(steps: &[TransformStep]) -> Result<Self, EngineError> {
        let steps = steps
            .iter()
            .map(|s| {
                Ok(match s {
                    TransformStep::Set { set, value } => Step::Set(parse_path(set)?, value.clone()),
                    TransformStep::Copy { copy, to } => {
                        Step::Copy(parse_path(copy)?, parse_path(to)?)
                    }
                    TransformStep::Clear { clear } => Step::Clear(parse_path(clear)?),
                    TransformStep::RemoveSegments { remove_segments } => {
                        Step::RemoveSegments(remove_segments.clone())
                    }
                })
            })
            .collect::<Result<_, EngineError>>()?;
        Ok(Transformer { steps })
    }

    /// The bytes queued for the destinations. Empty means "the message exactly as
    /// received", which the store then keeps only once.
    pub fn apply(&self, msg: &Message<'_>) -> Result<Vec<u8>, EngineError> {
        if self.steps.is_empty() {
            // A message with LF or CRLF terminators is forwarded with CR ones.
            return Ok(if msg.is_canonical() {
                Vec::new()
            } else {
                msg.to_bytes()
            });
        }
        let mut owned = OwnedMessage::from(msg);
        for step in &self.steps {
            match step {
                Step::Set(path, value) => owned
                    .set_path(path, value)
                    .map_err(|e| EngineError::Transform(e.to_string()))?,
                Step::Copy(from, to) => {
                    let value = field_text(msg, from).unwrap_or_default();
                    owned
                        .set_path(to, &value)
                        .map_err(|e| EngineError::Transform(e.to_string()))?
                }
                Step::Clear(path) => owned
                    .set_path(path, "")
                    .map_err(|e| EngineError::Transform(e.to_string()))?,
                Step::RemoveSegments(id) => {
                    owned.remove_segments(id);
                }
            }
        }
        Ok(owned.to_bytes())
    }
}

fn parse_path(s: &str) -> Result<Path, EngineError> {
    s.parse::<Path>()
        .map_err(|e| EngineError::Config(format!("bad field path {s:?}: {e}")))
}

/// The decoded text at `path`, if present.
fn field_text(msg: &Message<'_>, path: &Path) -> Option<String> {
    msg.get_path(path).map(|v| v.decoded().into_owned())
}
