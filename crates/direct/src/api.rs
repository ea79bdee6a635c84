//! The Messaging API's JSON (`/dirmsg/send_ccda`, `/dirmsg/status`, the
//! asynchronous notification) and the validation of a send request.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Longest accepted `messageId`; it is stored and echoed in notifications, so
/// an unbounded one would let a sender bloat every later status row.
pub const MAX_MESSAGE_ID_CHARS: usize = 256;
/// Most distinct recipients of one message.
pub const MAX_RECIPIENTS: usize = 100;
/// RFC 5321 path limit (256) less the angle brackets.
pub const MAX_ADDRESS_CHARS: usize = 254;

/// One clinical document of `emailAttachmentList`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment_class: Option<String>,
    /// Base64 of the document.
    #[serde(default)]
    pub attachment_content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment_file_name: Option<String>,
}

/// The body of `POST /dirmsg/send_ccda`, and (same shape) of the inbound post
/// to a receiving edge.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendRequest {
    #[serde(default)]
    pub from_direct_address: String,
    #[serde(default)]
    pub to_direct_address: String,
    #[serde(default)]
    pub message_id: String,
    #[serde(default)]
    pub email_attachment_list: Vec<Attachment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_address_street1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_address_street2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_address_city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_address_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_address_zip: Option<String>,
    #[serde(
        rename = "patientDOB",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub patient_dob: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_gender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<String>,
    #[serde(
        rename = "assigning_authority",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub assigning_authority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_id_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_lastname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_firstname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_middlename: Option<String>,
    #[serde(
        rename = "patient_summary",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub patient_summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loinc_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loinc_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_person: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_institution: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xdm_file_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment_file_name: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub xdm: Option<bool>,
    #[serde(
        default,
        deserialize_with = "lenient_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub asm_enabled: Option<bool>,
}

/// The synchronous answer of `send_ccda`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendResponse {
    pub message_id: String,
    pub status: String,
    pub transaction_id: String,
    pub result: String,
}

/// The answer of `GET /dirmsg/status`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusResponse {
    pub sender: String,
    pub recipient: String,
    #[serde(rename = "xdMsgId")]
    pub xd_msg_id: String,
    /// Like `2020-04-10 15:10:39.0`, see [`crate::send_time`].
    pub send_time: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

/// The asynchronous delivery status notification posted to the sending edge.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Notification {
    #[serde(rename = "Timestamp")]
    pub timestamp: String,
    /// The sender's original messageId.
    #[serde(rename = "Id")]
    pub id: String,
    /// `Success` or `Error`.
    #[serde(rename = "Status")]
    pub status: String,
    #[serde(rename = "Description")]
    pub description: String,
    #[serde(rename = "Disposition")]
    pub disposition: String,
}

/// A field problem: the 400 answer's `result` names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The seed says `asmEnabled` is enabled 'when set to "true"', so senders are
/// known to send the string; both spellings must be accepted.
fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => bool_of(&v)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("expected true, false, \"true\" or \"false\"")),
    }
}

fn bool_of(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => {
            let s = s.trim();
            if s.eq_ignore_ascii_case("true") {
                Some(true)
            } else if s.eq_ignore_ascii_case("false") {
                Some(false)
            } else {
                None
            }
        }
        _ => None,
    }
}

const OPTIONAL_STRINGS: &[&str] = &[
    "messageBody",
    "messageSubject",
    "patientAddressStreet1",
    "patientAddressStreet2",
    "patientAddressCity",
    "patientAddressState",
    "patientAddressZip",
    "patientDOB",
    "patientGender",
    "patientId",
    "assigning_authority",
    "patientIdType",
    "patientLastname",
    "patientFirstname",
    "patientMiddlename",
    "patient_summary",
    "replyToMessageId",
    "loincName",
    "loincValue",
    "authorPerson",
    "authorInstitution",
    "xdmFileName",
    "attachmentFileName",
];

/// Parses and validates a send_ccda body.
///
/// Types are checked on the raw JSON before serde sees it, so that every
/// error names the offending field instead of serde's line/column text.
pub fn parse_send(body: &[u8]) -> Result<SendRequest, FieldError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| FieldError::new("body", format!("not valid JSON: {e}")))?;
    let Value::Object(obj) = &value else {
        return Err(FieldError::new("body", "must be a JSON object"));
    };

    for field in ["fromDirectAddress", "toDirectAddress", "messageId"] {
        required_string(obj, field)?;
    }
    let list = match obj.get("emailAttachmentList") {
        None | Some(Value::Null) => {
            return Err(FieldError::new("emailAttachmentList", "is required"));
        }
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(FieldError::new(
                "emailAttachmentList",
                "must hold at least one attachment",
            ));
        }
        Some(Value::Array(a)) => a,
        Some(_) => return Err(FieldError::new("emailAttachmentList", "must be an array")),
    };
    for field in OPTIONAL_STRINGS {
        optional_string(obj, field, field)?;
    }
    for field in ["xdm", "asmEnabled"] {
        match obj.get(field) {
            None | Some(Value::Null) => {}
            Some(v) if bool_of(v).is_some() => {}
            Some(_) => {
                return Err(FieldError::new(
                    field,
                    "must be true or false (or the strings \"true\"/\"false\")",
                ));
            }
        }
    }
    for (i, item) in list.iter().enumerate() {
        check_attachment(i, item)?;
    }

    let mut req: SendRequest = serde_json::from_value(value)
        .map_err(|e| FieldError::new("body", format!("unexpected shape: {e}")))?;
    // Stored and compared against the status query's fromDirectAddress.
    req.from_direct_address = req.from_direct_address.trim().to_string();

    if !is_direct_address(&req.from_direct_address) {
        return Err(FieldError::new(
            "fromDirectAddress",
            "must be a Direct address like john@example.org",
        ));
    }
    recipients(&req.to_direct_address)?;
    if req.message_id.chars().count() > MAX_MESSAGE_ID_CHARS {
        return Err(FieldError::new(
            "messageId",
            format!("must be at most {MAX_MESSAGE_ID_CHARS} characters"),
        ));
    }
    // The id travels into headers, file names and status URLs.
    if req.message_id.chars().any(char::is_control) {
        return Err(FieldError::new(
            "messageId",
            "must not contain control characters",
        ));
    }
    for (field, name) in [
        ("xdmFileName", &req.xdm_file_name),
        ("attachmentFileName", &req.attachment_file_name),
    ] {
        if let Some(name) = name {
            check_file_name(field, name)?;
        }
    }
    Ok(req)
}

fn required_string(obj: &Map<String, Value>, field: &str) -> Result<(), FieldError> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(FieldError::new(field, "is required")),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(FieldError::new(field, "must not be empty"))
        }
        Some(Value::String(_)) => Ok(()),
        Some(_) => Err(FieldError::new(field, "must be a string")),
    }
}

fn optional_string(obj: &Map<String, Value>, key: &str, field: &str) -> Result<(), FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) | Some(Value::String(_)) => Ok(()),
        Some(_) => Err(FieldError::new(field, "must be a string")),
    }
}

fn check_attachment(i: usize, item: &Value) -> Result<(), FieldError> {
    let prefix = format!("emailAttachmentList[{i}]");
    let Value::Object(att) = item else {
        return Err(FieldError::new(prefix, "must be an object"));
    };
    let content_field = format!("{prefix}.attachmentContent");
    let content = match att.get("attachmentContent") {
        None | Some(Value::Null) => return Err(FieldError::new(content_field, "is required")),
        Some(Value::String(s)) => s,
        Some(_) => return Err(FieldError::new(content_field, "must be a string")),
    };
    if decode_base64(content).is_none_or(|b| b.is_empty()) {
        return Err(FieldError::new(
            content_field,
            "must be non-empty Base64 (standard alphabet, padded)",
        ));
    }
    for key in ["attachmentClass", "attachmentTitle", "attachmentFileName"] {
        optional_string(att, key, &format!("{prefix}.{key}"))?;
    }
    if let Some(Value::String(class)) = att.get("attachmentClass")
        && !is_media_type(class)
    {
        return Err(FieldError::new(
            format!("{prefix}.attachmentClass"),
            "must be a media type like text/xml or application/pdf",
        ));
    }
    if let Some(Value::String(name)) = att.get("attachmentFileName") {
        check_file_name(&format!("{prefix}.attachmentFileName"), name)?;
    }
    Ok(())
}

/// The seed says the HISP adds the extension itself. Its own example of an
/// attachmentFileName is "attachment/ccda", so '/' is taken (the package's
/// file names are sanitized anyway); a backslash or a control character could
/// only be an attempt to escape the package folder or break a MIME header.
fn check_file_name(field: &str, name: &str) -> Result<(), FieldError> {
    if name.contains('\\') {
        return Err(FieldError::new(field, "must not contain '\\'"));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    if name.chars().count() > 200 {
        return Err(FieldError::new(field, "must be at most 200 characters"));
    }
    Ok(())
}

/// `type/subtype` with RFC 6838 restricted-name characters, parameters allowed.
pub(crate) fn is_media_type(s: &str) -> bool {
    let essence = s.split(';').next().unwrap_or("").trim();
    let Some((ty, sub)) = essence.split_once('/') else {
        return false;
    };
    let token = |t: &str| {
        !t.is_empty()
            && t.len() <= 127
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    token(ty) && token(sub)
}

/// Base64 bodies arrive wrapped at 76 columns from many EHRs; whitespace is
/// transport noise, anything else outside the alphabet is an error.
pub(crate) fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let compact: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    STANDARD.decode(compact).ok()
}

/// The recipients of `toDirectAddress`: comma-separated, trimmed, domain
/// lowercased, duplicates removed (first kept), each validated.
pub fn recipients(to: &str) -> Result<Vec<String>, FieldError> {
    let mut out: Vec<String> = Vec::new();
    for piece in to.split(',') {
        let piece = piece.trim();
        // A trailing or doubled comma is a common EHR join artefact, not a recipient.
        if piece.is_empty() {
            continue;
        }
        if !is_direct_address(piece) {
            return Err(FieldError::new(
                "toDirectAddress",
                format!("{piece:?} is not a Direct address"),
            ));
        }
        let normalized = match piece.rsplit_once('@') {
            Some((local, domain)) => format!("{local}@{}", domain.to_ascii_lowercase()),
            None => piece.to_string(),
        };
        if !out.contains(&normalized) {
            out.push(normalized);
            if out.len() > MAX_RECIPIENTS {
                return Err(FieldError::new(
                    "toDirectAddress",
                    format!("at most {MAX_RECIPIENTS} recipients"),
                ));
            }
        }
    }
    if out.is_empty() {
        return Err(FieldError::new("toDirectAddress", "must not be empty"));
    }
    Ok(out)
}

/// `local@domain`, RFC 5321-ish: dot-atom local part of at most 64
/// characters, a domain of at least two DNS labels, at most 254 characters.
pub fn is_direct_address(s: &str) -> bool {
    if s.is_empty() || s.len() > MAX_ADDRESS_CHARS {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    if domain.contains('@') {
        return false;
    }
    is_local_part(local) && is_domain(domain)
}

fn is_local_part(local: &str) -> bool {
    const ATEXT: &[u8] = b"!#$%&'*+-/=?^_`{|}~";
    !local.is_empty()
        && local.len() <= 64
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || ATEXT.contains(&b))
        })
}

fn is_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The domain part, lowercased.
pub fn domain_of(address: &str) -> Option<String> {
    let (_, domain) = address.trim().rsplit_once('@')?;
    if domain.is_empty() {
        return None;
    }
    Some(domain.to_ascii_lowercase())
}

/// The decoded attachments (bytes) in order.
pub fn decode_attachments(req: &SendRequest) -> Result<Vec<Vec<u8>>, FieldError> {
    req.email_attachment_list
        .iter()
        .enumerate()
        .map(|(i, a)| {
            decode_base64(&a.attachment_content).ok_or_else(|| {
                FieldError::new(
                    format!("emailAttachmentList[{i}].attachmentContent"),
                    "is not valid Base64",
                )
            })
        })
        .collect()
}
