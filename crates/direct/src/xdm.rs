//! IHE XDM (ITI-32, Distribute Document Set on Media) packages as the Direct
//! Project sends them: a zip with `INDEX.HTM` and `README.TXT` at the root and
//! one submission set in `IHE_XDM/SUBSET01/` — `METADATA.XML` (an ebRIM 3.0
//! `lcm:SubmitObjectsRequest`) beside the documents, whose `URI` slots are
//! relative to that folder.
//!
//! The API cannot supply everything full XDS metadata requires
//! (confidentialityCode, formatCode, facility and practice setting codes), so
//! the entries are flagged as XDS "limited metadata" rather than pretend.

use std::fmt::Write as _;
use std::io::{Cursor, Write as _};

use chrono::{DateTime, Datelike, Timelike, Utc};
use sha1::{Digest, Sha1};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::api::{SendRequest, decode_base64, is_media_type, recipients};

/// Why a package could not be built.
#[derive(Debug, thiserror::Error)]
pub enum XdmError {
    #[error("attachment {0} is not valid Base64")]
    Base64(usize),
    #[error("zip: {0}")]
    Zip(String),
}

/// The folder of the one submission set, relative to the zip root.
pub const SUBSET_DIR: &str = "IHE_XDM/SUBSET01";

// ebRIM 3.0 namespaces.
const NS_LCM: &str = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0";
const NS_RIM: &str = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0";
const NS_RS: &str = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0";

// XDS metadata UUIDs (ITI TF-3 4.2.5).
const DOCUMENT_ENTRY_STABLE: &str = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1";
const DE_AUTHOR: &str = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d";
const DE_CLASS_CODE: &str = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a";
const DE_TYPE_CODE: &str = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983";
const DE_PATIENT_ID: &str = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427";
const DE_UNIQUE_ID: &str = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab";
const DE_LIMITED_METADATA: &str = "urn:uuid:ab9b591b-83ab-4d03-8f5d-f93b1fb92e85";
const SUBMISSION_SET_NODE: &str = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd";
const SS_AUTHOR: &str = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d";
const SS_PATIENT_ID: &str = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446";
const SS_SOURCE_ID: &str = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832";
const SS_UNIQUE_ID: &str = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8";
const SS_LIMITED_METADATA: &str = "urn:uuid:5003a9db-8d8d-49e6-bf0c-990e34ac7707";
const HAS_MEMBER: &str = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember";
const OBJ_CLASSIFICATION: &str =
    "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification";
const OBJ_EXTERNAL_ID: &str =
    "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:ExternalIdentifier";
const OBJ_ASSOCIATION: &str =
    "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association";
const LOINC_OID: &str = "2.16.840.1.113883.6.1";

/// Common LOINC document type names senders put in `loincName`; the value
/// sets are C-CDA's (Referral, Discharge summary …) and US Core's note types.
const LOINC_DOCUMENT_TYPES: &[(&str, &str)] = &[
    ("referral note", "57133-1"),
    ("summarization of episode note", "34133-9"),
    ("discharge summary", "18842-5"),
    ("consult note", "11488-4"),
    ("consultation note", "11488-4"),
    ("history and physical note", "34117-2"),
    ("progress note", "11506-3"),
    ("procedure note", "28570-0"),
    ("transfer summary note", "18761-7"),
];

/// The XDM package file name: `<xdmFileName>-xdm.zip` when given, else one
/// derived from the messageId (`msg-<sanitized>-xdm.zip`).
pub fn xdm_file_name(req: &SendRequest) -> String {
    if let Some(given) = req.xdm_file_name.as_deref() {
        // The seed asks senders not to add the extension; some do anyway.
        let mut base = given.trim();
        for suffix in [".zip", "-xdm"] {
            if base.len() >= suffix.len()
                && base.is_char_boundary(base.len() - suffix.len())
                && base[base.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            {
                base = &base[..base.len() - suffix.len()];
            }
        }
        let clean = sanitize(base, 100);
        if !clean.is_empty() {
            return format!("{clean}-xdm.zip");
        }
    }
    let id = req.message_id.trim();
    let id = strip_prefix_ci(id, "urn:uuid:").unwrap_or(id);
    let clean = sanitize(id, 100);
    if clean.is_empty() {
        "msg-xdm.zip".to_string()
    } else {
        format!("msg-{clean}-xdm.zip")
    }
}

/// One document of the package.
struct Doc {
    file_name: String,
    mime: String,
    title: Option<String>,
    bytes: Vec<u8>,
}

/// The IHE XDM zip of the request's attachments, built in memory.
pub fn package(
    req: &SendRequest,
    submission_set_id: &str,
    at_millis: i64,
) -> Result<Vec<u8>, XdmError> {
    let docs = documents(req)?;
    let at = DateTime::<Utc>::from_timestamp_millis(at_millis).unwrap_or_default();
    let metadata = metadata_xml(req, &docs, submission_set_id, at);

    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let mut options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    // A fixed time keeps packages reproducible; zip cannot express pre-1980.
    if let Ok(t) = zip::DateTime::from_date_and_time(
        u16::try_from(at.year()).unwrap_or(1980).clamp(1980, 2107),
        at.month() as u8,
        at.day() as u8,
        at.hour() as u8,
        at.minute() as u8,
        at.second() as u8,
    ) {
        options = options.last_modified_time(t);
    }
    let mut add = |name: String, data: &[u8]| -> Result<(), XdmError> {
        zip.start_file(name, options)
            .map_err(|e| XdmError::Zip(e.to_string()))?;
        zip.write_all(data)
            .map_err(|e| XdmError::Zip(e.to_string()))
    };
    add("INDEX.HTM".into(), index_htm(req, &docs).as_bytes())?;
    add("README.TXT".into(), readme_txt(req, &docs, at).as_bytes())?;
    add(format!("{SUBSET_DIR}/METADATA.XML"), metadata.as_bytes())?;
    for d in &docs {
        add(format!("{SUBSET_DIR}/{}", d.file_name), &d.bytes)?;
    }
    let cursor = zip.finish().map_err(|e| XdmError::Zip(e.to_string()))?;
    Ok(cursor.into_inner())
}

fn documents(req: &SendRequest) -> Result<Vec<Doc>, XdmError> {
    let count = req.email_attachment_list.len();
    let mut used: Vec<String> = Vec::new();
    let mut docs = Vec::with_capacity(count);
    for (i, a) in req.email_attachment_list.iter().enumerate() {
        let bytes = decode_base64(&a.attachment_content).ok_or(XdmError::Base64(i))?;
        let n = i + 1;
        let mime = a
            .attachment_class
            .as_deref()
            .filter(|c| is_media_type(c))
            .map(|c| c.split(';').next().unwrap_or(c).trim().to_ascii_lowercase())
            .unwrap_or_else(|| sniff_mime(&bytes).to_string());
        let ext = extension_for(&mime);
        let stem = match (
            a.attachment_file_name.as_deref(),
            req.attachment_file_name.as_deref(),
        ) {
            (Some(own), _) if !sanitize(own, 64).is_empty() => sanitize(own, 64),
            (_, Some(common)) if !sanitize(common, 64).is_empty() => {
                if count == 1 {
                    sanitize(common, 64)
                } else {
                    format!("{}_{n}", sanitize(common, 60))
                }
            }
            _ => format!("DOCUMENT_{n}"),
        };
        let stem = strip_suffix_ci(&stem, &format!(".{ext}"))
            .unwrap_or(&stem)
            .to_string();
        let mut file_name = format!("{stem}.{ext}");
        // FAT and ISO 9660 media, XDM's origin, are case-insensitive.
        let mut k = 2;
        while used.iter().any(|u| u.eq_ignore_ascii_case(&file_name)) {
            file_name = format!("{stem}_{k}.{ext}");
            k += 1;
        }
        used.push(file_name.clone());
        docs.push(Doc {
            file_name,
            mime,
            title: a.attachment_title.clone().filter(|t| !t.trim().is_empty()),
            bytes,
        });
    }
    Ok(docs)
}

fn extension_for(mime: &str) -> &'static str {
    match mime {
        "application/pdf" => "pdf",
        "text/plain" => "txt",
        "text/html" => "html",
        "image/jpeg" | "image/jpg" => "jpg",
        "image/png" => "png",
        "image/tiff" => "tif",
        "image/gif" => "gif",
        "application/json" => "json",
        "text/rtf" | "application/rtf" => "rtf",
        "text/xml" | "application/xml" => "xml",
        m if m.ends_with("+xml") => "xml",
        _ => "bin",
    }
}

/// Only used when the sender gave no attachmentClass: the ExtrinsicObject's
/// mimeType is mandatory.
fn sniff_mime(bytes: &[u8]) -> &'static str {
    let head = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if head.starts_with(b"%PDF-") {
        "application/pdf"
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if head.starts_with(b"\xFF\xD8\xFF") {
        "image/jpeg"
    } else if head.starts_with(b"<?xml") {
        "text/xml"
    } else {
        "application/octet-stream"
    }
}

/// Keeps `[A-Za-z0-9._-]`, replaces the rest with `_`, never starts with a
/// dot (hidden files, `..`), at most `max` characters.
fn sanitize(s: &str, max: usize) -> String {
    let mapped: String = s
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = mapped.trim_start_matches('.');
    trimmed.chars().take(max).collect()
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    let tail = s.get(cut..)?;
    (tail.eq_ignore_ascii_case(suffix) && cut > 0).then(|| &s[..cut])
}

fn sha1_hex(bytes: &[u8]) -> String {
    let digest = Sha1::digest(bytes);
    let mut out = String::with_capacity(40);
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A name-based (SHA-1, version 5 layout) UUID: the same request always gets
/// the same entry ids, which keeps packages reproducible and testable.
fn uuid_from(seed: &str) -> [u8; 16] {
    let digest = Sha1::digest(seed.as_bytes());
    let mut u = [0u8; 16];
    u.copy_from_slice(&digest[..16]);
    u[6] = (u[6] & 0x0f) | 0x50;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

fn uuid_string(u: [u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let s = strip_prefix_ci(s.trim(), "urn:uuid:").unwrap_or(s.trim());
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || s.len() != 36 {
        return None;
    }
    let mut u = [0u8; 16];
    for (i, slot) in u.iter_mut().enumerate() {
        *slot = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(u)
}

fn is_oid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.split('.').count() >= 2
        && s.split('.').all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p == "0" || !p.starts_with('0'))
        })
}

/// XDS uniqueIds are OIDs; a UUID maps to one under `2.25` (ITU-T X.667).
fn oid_for(id: &str) -> String {
    if is_oid(id.trim()) {
        return id.trim().to_string();
    }
    let u = parse_uuid(id).unwrap_or_else(|| uuid_from(&format!("medrelay-direct:{id}")));
    format!("2.25.{}", u128::from_be_bytes(u))
}

fn entry_uuid(submission_set_id: &str, what: &str) -> String {
    format!(
        "urn:uuid:{}",
        uuid_string(uuid_from(&format!("{submission_set_id}#{what}")))
    )
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// HL7 v2 escapes, so that a name containing `^` cannot shift components.
fn hl7_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\E\\"),
            '|' => out.push_str("\\F\\"),
            '^' => out.push_str("\\S\\"),
            '&' => out.push_str("\\T\\"),
            '~' => out.push_str("\\R\\"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The patient id in the CX form XDS requires: `id^^^&authority&ISO`. The
/// assigning authority falls back to patientIdType when that is an OID,
/// because senders put the OID there too.
pub(crate) fn patient_cx(req: &SendRequest) -> Option<String> {
    let id = non_empty(&req.patient_id)?;
    let authority = non_empty(&req.assigning_authority)
        .or_else(|| non_empty(&req.patient_id_type).filter(|t| is_oid(t)))?;
    Some(format!(
        "{}^^^&{}&ISO",
        hl7_escape(id),
        hl7_escape(authority)
    ))
}

/// Escapes text for XML element content and attribute values alike; C0
/// controls other than tab/CR/LF are not allowed in XML 1.0 at all.
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

struct Xml(String);

impl Xml {
    fn slot(&mut self, name: &str, values: &[String]) {
        let _ = write!(
            self.0,
            "<rim:Slot name=\"{}\"><rim:ValueList>",
            xml_escape(name)
        );
        for v in values {
            let _ = write!(self.0, "<rim:Value>{}</rim:Value>", xml_escape(v));
        }
        self.0.push_str("</rim:ValueList></rim:Slot>\n");
    }

    fn name(&mut self, text: &str) {
        let _ = writeln!(
            self.0,
            "<rim:Name><rim:LocalizedString value=\"{}\"/></rim:Name>",
            xml_escape(text)
        );
    }

    fn external_id(&mut self, id: &str, scheme: &str, object: &str, value: &str, label: &str) {
        let _ = writeln!(
            self.0,
            "<rim:ExternalIdentifier id=\"{}\" objectType=\"{OBJ_EXTERNAL_ID}\" identificationScheme=\"{scheme}\" registryObject=\"{}\" value=\"{}\">",
            xml_escape(id),
            xml_escape(object),
            xml_escape(value)
        );
        self.name(label);
        self.0.push_str("</rim:ExternalIdentifier>\n");
    }

    /// A classification by scheme (a coded attribute) with its slots.
    fn coded(
        &mut self,
        id: &str,
        scheme: &str,
        object: &str,
        node: &str,
        slots: &[(&str, Vec<String>)],
        display: Option<&str>,
    ) {
        let _ = writeln!(
            self.0,
            "<rim:Classification id=\"{}\" objectType=\"{OBJ_CLASSIFICATION}\" classificationScheme=\"{scheme}\" classifiedObject=\"{}\" nodeRepresentation=\"{}\">",
            xml_escape(id),
            xml_escape(object),
            xml_escape(node)
        );
        for (name, values) in slots {
            self.slot(name, values);
        }
        if let Some(d) = display {
            self.name(d);
        }
        self.0.push_str("</rim:Classification>\n");
    }

    /// A classification by node (object type flags), no content.
    fn flag(&mut self, id: &str, node: &str, object: &str) {
        let _ = writeln!(
            self.0,
            "<rim:Classification id=\"{}\" objectType=\"{OBJ_CLASSIFICATION}\" classificationNode=\"{node}\" classifiedObject=\"{}\"/>",
            xml_escape(id),
            xml_escape(object)
        );
    }
}

fn author_slots(req: &SendRequest, with_telecom: bool) -> Vec<(&'static str, Vec<String>)> {
    let mut slots = Vec::new();
    if let Some(p) = non_empty(&req.author_person) {
        slots.push(("authorPerson", vec![p.to_string()]));
    }
    if let Some(i) = non_empty(&req.author_institution) {
        slots.push(("authorInstitution", vec![i.to_string()]));
    }
    if with_telecom && !req.from_direct_address.trim().is_empty() {
        slots.push((
            "authorTelecommunication",
            vec![format!("^^Internet^{}", req.from_direct_address.trim())],
        ));
    }
    slots
}

/// classCode/typeCode from loincName/loincValue: a known document type name
/// or a LOINC-shaped code becomes the code; other names are passed on with
/// the sender's coding scheme.
fn document_code(req: &SendRequest) -> Option<(String, String, String)> {
    let name = non_empty(&req.loinc_name)?;
    let scheme_given = non_empty(&req.loinc_value);
    let is_loinc = scheme_given.is_none_or(|v| v.eq_ignore_ascii_case("LOINC") || v == LOINC_OID);
    let looks_like_code = name.split_once('-').is_some_and(|(a, b)| {
        !a.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.len() == 1
            && b.bytes().all(|c| c.is_ascii_digit())
    });
    let known = LOINC_DOCUMENT_TYPES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, c)| *c);
    let code = if looks_like_code {
        name.to_string()
    } else {
        known
            .map(str::to_string)
            .unwrap_or_else(|| name.to_string())
    };
    let scheme = if is_loinc {
        LOINC_OID.to_string()
    } else {
        scheme_given.unwrap_or_default().to_string()
    };
    Some((code, scheme, name.to_string()))
}

/// The ISO OID in the last component of an XON (`name^^^^^^^^^oid`), which
/// the seed's authorInstitution carries.
fn xon_oid(xon: &str) -> Option<&str> {
    let last = xon.rsplit('^').next()?.trim();
    let oid = last.split('&').next().unwrap_or(last);
    is_oid(oid).then_some(oid)
}

fn metadata_xml(
    req: &SendRequest,
    docs: &[Doc],
    submission_set_id: &str,
    at: DateTime<Utc>,
) -> String {
    let dtm = at.format("%Y%m%d%H%M%S").to_string();
    let ss_oid = oid_for(submission_set_id);
    let ss_id = match parse_uuid(submission_set_id) {
        Some(u) => format!("urn:uuid:{}", uuid_string(u)),
        None => entry_uuid(submission_set_id, "submission-set"),
    };
    let source_id = non_empty(&req.author_institution)
        .and_then(xon_oid)
        .map(str::to_string)
        .unwrap_or_else(|| oid_for(&format!("source:{}", req.from_direct_address.trim())));
    let cx = patient_cx(req);
    let code = document_code(req);

    let mut x = Xml(String::with_capacity(4096 + docs.len() * 2048));
    let _ = writeln!(
        x.0,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<lcm:SubmitObjectsRequest xmlns:lcm=\"{NS_LCM}\" xmlns:rim=\"{NS_RIM}\" xmlns:rs=\"{NS_RS}\">\n<rim:RegistryObjectList>"
    );

    for (i, d) in docs.iter().enumerate() {
        let n = i + 1;
        let id = entry_uuid(submission_set_id, &format!("document-{n}"));
        let _ = writeln!(
            x.0,
            "<rim:ExtrinsicObject id=\"{id}\" mimeType=\"{}\" objectType=\"{DOCUMENT_ENTRY_STABLE}\" status=\"urn:oasis:names:tc:ebxml-regrep:StatusType:Approved\">",
            xml_escape(&d.mime)
        );
        x.slot("creationTime", std::slice::from_ref(&dtm));
        x.slot("hash", &[sha1_hex(&d.bytes)]);
        x.slot("size", &[d.bytes.len().to_string()]);
        x.slot("URI", std::slice::from_ref(&d.file_name));
        x.slot("languageCode", &["en-US".to_string()]);
        if let Some(cx) = &cx {
            x.slot("sourcePatientId", std::slice::from_ref(cx));
        }
        let info = source_patient_info(req, cx.as_deref());
        if !info.is_empty() {
            x.slot("sourcePatientInfo", &info);
        }
        if let Some(title) = d.title.as_deref() {
            x.name(title);
        }
        let slots = author_slots(req, false);
        if !slots.is_empty() {
            x.coded(
                &entry_uuid(submission_set_id, &format!("document-{n}/author")),
                DE_AUTHOR,
                &id,
                "",
                &slots,
                None,
            );
        }
        if let Some((code, scheme, display)) = &code {
            let slots = [("codingScheme", vec![scheme.clone()])];
            x.coded(
                &entry_uuid(submission_set_id, &format!("document-{n}/class")),
                DE_CLASS_CODE,
                &id,
                code,
                &slots,
                Some(display),
            );
            x.coded(
                &entry_uuid(submission_set_id, &format!("document-{n}/type")),
                DE_TYPE_CODE,
                &id,
                code,
                &slots,
                Some(display),
            );
        }
        x.flag(
            &entry_uuid(submission_set_id, &format!("document-{n}/limited")),
            DE_LIMITED_METADATA,
            &id,
        );
        if let Some(cx) = &cx {
            x.external_id(
                &entry_uuid(submission_set_id, &format!("document-{n}/pid")),
                DE_PATIENT_ID,
                &id,
                cx,
                "XDSDocumentEntry.patientId",
            );
        }
        x.external_id(
            &entry_uuid(submission_set_id, &format!("document-{n}/uid")),
            DE_UNIQUE_ID,
            &id,
            &format!("{ss_oid}.{n}"),
            "XDSDocumentEntry.uniqueId",
        );
        x.0.push_str("</rim:ExtrinsicObject>\n");
    }

    let _ = writeln!(
        x.0,
        "<rim:RegistryPackage id=\"{ss_id}\" objectType=\"urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:RegistryPackage\">"
    );
    x.slot("submissionTime", std::slice::from_ref(&dtm));
    // Direct addresses are intendedRecipient's XTN part: XON|XCN|XTN.
    let to: Vec<String> = recipients(&req.to_direct_address)
        .unwrap_or_default()
        .into_iter()
        .map(|r| format!("||^^Internet^{r}"))
        .collect();
    if !to.is_empty() {
        x.slot("intendedRecipient", &to);
    }
    if let Some(subject) = non_empty(&req.message_subject) {
        x.name(subject);
    }
    if let Some(body) = non_empty(&req.message_body) {
        let _ = writeln!(
            x.0,
            "<rim:Description><rim:LocalizedString value=\"{}\"/></rim:Description>",
            xml_escape(body)
        );
    }
    x.coded(
        &entry_uuid(submission_set_id, "submission-set/author"),
        SS_AUTHOR,
        &ss_id,
        "",
        &author_slots(req, true),
        None,
    );
    x.external_id(
        &entry_uuid(submission_set_id, "submission-set/uid"),
        SS_UNIQUE_ID,
        &ss_id,
        &ss_oid,
        "XDSSubmissionSet.uniqueId",
    );
    x.external_id(
        &entry_uuid(submission_set_id, "submission-set/src"),
        SS_SOURCE_ID,
        &ss_id,
        &source_id,
        "XDSSubmissionSet.sourceId",
    );
    if let Some(cx) = &cx {
        x.external_id(
            &entry_uuid(submission_set_id, "submission-set/pid"),
            SS_PATIENT_ID,
            &ss_id,
            cx,
            "XDSSubmissionSet.patientId",
        );
    }
    x.0.push_str("</rim:RegistryPackage>\n");
    x.flag(
        &entry_uuid(submission_set_id, "submission-set/node"),
        SUBMISSION_SET_NODE,
        &ss_id,
    );
    x.flag(
        &entry_uuid(submission_set_id, "submission-set/limited"),
        SS_LIMITED_METADATA,
        &ss_id,
    );

    for n in 1..=docs.len() {
        let doc_id = entry_uuid(submission_set_id, &format!("document-{n}"));
        let _ = writeln!(
            x.0,
            "<rim:Association id=\"{}\" objectType=\"{OBJ_ASSOCIATION}\" associationType=\"{HAS_MEMBER}\" sourceObject=\"{ss_id}\" targetObject=\"{doc_id}\">",
            entry_uuid(submission_set_id, &format!("association-{n}"))
        );
        x.slot("SubmissionSetStatus", &["Original".to_string()]);
        x.0.push_str("</rim:Association>\n");
    }
    x.0.push_str("</rim:RegistryObjectList>\n</lcm:SubmitObjectsRequest>\n");
    x.0
}

/// sourcePatientInfo's PID fields: 3 (CX), 5 (last^first^middle), 7 (DOB),
/// 8 (gender), 11 (street^other^city^state^zip).
fn source_patient_info(req: &SendRequest, cx: Option<&str>) -> Vec<String> {
    let esc = |f: &Option<String>| non_empty(f).map(hl7_escape).unwrap_or_default();
    let mut out = Vec::new();
    if let Some(cx) = cx {
        out.push(format!("PID-3|{cx}"));
    }
    let name = [
        &req.patient_lastname,
        &req.patient_firstname,
        &req.patient_middlename,
    ];
    if name.iter().any(|f| non_empty(f).is_some()) {
        let parts: Vec<String> = name.iter().map(|f| esc(f)).collect();
        out.push(format!("PID-5|{}", parts.join("^")));
    }
    if let Some(dob) = non_empty(&req.patient_dob) {
        out.push(format!("PID-7|{}", hl7_escape(dob)));
    }
    if let Some(g) = non_empty(&req.patient_gender) {
        out.push(format!("PID-8|{}", hl7_escape(g)));
    }
    let addr = [
        &req.patient_address_street1,
        &req.patient_address_street2,
        &req.patient_address_city,
        &req.patient_address_state,
        &req.patient_address_zip,
    ];
    if addr.iter().any(|f| non_empty(f).is_some()) {
        let parts: Vec<String> = addr.iter().map(|f| esc(f)).collect();
        out.push(format!("PID-11|{}", parts.join("^")));
    }
    out
}

fn index_htm(req: &SendRequest, docs: &[Doc]) -> String {
    let mut h = String::new();
    let title = non_empty(&req.message_subject).unwrap_or("Direct message documents");
    let _ = write!(
        h,
        "<!DOCTYPE html>\r\n<html><head><meta charset=\"utf-8\"><title>{}</title></head><body>\r\n<h1>{}</h1>\r\n<p>From {} to {}</p>\r\n",
        xml_escape(title),
        xml_escape(title),
        xml_escape(req.from_direct_address.trim()),
        xml_escape(&req.to_direct_address)
    );
    if let Some(body) = non_empty(&req.message_body) {
        let _ = write!(h, "<p>{}</p>\r\n", xml_escape(body));
    }
    h.push_str("<ul>\r\n");
    for d in docs {
        let label = d.title.as_deref().unwrap_or(&d.file_name);
        let _ = write!(
            h,
            "<li><a href=\"{SUBSET_DIR}/{}\">{}</a> ({}, {} bytes)</li>\r\n",
            xml_escape(&d.file_name),
            xml_escape(label),
            xml_escape(&d.mime),
            d.bytes.len()
        );
    }
    let _ = write!(
        h,
        "</ul>\r\n<p><a href=\"README.TXT\">README.TXT</a> &middot; <a href=\"{SUBSET_DIR}/METADATA.XML\">METADATA.XML</a></p>\r\n</body></html>\r\n"
    );
    h
}

fn readme_txt(req: &SendRequest, docs: &[Doc], at: DateTime<Utc>) -> String {
    let mut t = String::new();
    let _ = write!(
        t,
        "IHE XDM package (ITI-32) created by medrelay.\r\n\r\nSender: {}\r\nRecipients: {}\r\nMessage: {}\r\nCreated: {}\r\n\r\nThe documents and their XDS metadata (METADATA.XML) are in {SUBSET_DIR}/.\r\nOpen INDEX.HTM in a browser to view them.\r\n\r\n",
        one_line(&req.from_direct_address),
        one_line(&req.to_direct_address),
        one_line(&req.message_id),
        at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    for d in docs {
        let _ = write!(
            t,
            "{SUBSET_DIR}/{}  {}  {} bytes\r\n",
            d.file_name,
            d.mime,
            d.bytes.len()
        );
    }
    t
}

fn one_line(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdm_file_name_given_and_derived() {
        let mut r = SendRequest {
            message_id: "urn:uuid:a2d59543-91f4-45a4-99ef-72d70da1e454".into(),
            ..Default::default()
        };
        assert_eq!(
            xdm_file_name(&r),
            "msg-a2d59543-91f4-45a4-99ef-72d70da1e454-xdm.zip"
        );
        r.xdm_file_name = Some("Kramden referral".into());
        assert_eq!(xdm_file_name(&r), "Kramden_referral-xdm.zip");
        r.xdm_file_name = Some("pkg.zip".into());
        assert_eq!(xdm_file_name(&r), "pkg-xdm.zip");
        r.xdm_file_name = Some("pkg-xdm.ZIP".into());
        assert_eq!(xdm_file_name(&r), "pkg-xdm.zip");
        r.xdm_file_name = Some("  ".into());
        assert_eq!(
            xdm_file_name(&r),
            "msg-a2d59543-91f4-45a4-99ef-72d70da1e454-xdm.zip"
        );
        r.message_id = "<weird id>@host".into();
        r.xdm_file_name = None;
        assert_eq!(xdm_file_name(&r), "msg-_weird_id__host-xdm.zip");
        r.message_id = "...".into();
        assert_eq!(xdm_file_name(&r), "msg-xdm.zip");
    }

    #[test]
    fn oid_and_uuid_helpers() {
        assert_eq!(oid_for("1.2.3"), "1.2.3");
        assert_eq!(
            oid_for("urn:uuid:00000000-0000-0000-0000-000000000010"),
            "2.25.16"
        );
        let derived = oid_for("not an oid");
        assert!(
            derived.starts_with("2.25.") && derived.len() <= 64,
            "{derived}"
        );
        assert_eq!(derived, oid_for("not an oid"));
        assert!(!is_oid("1.02.3"));
        assert!(!is_oid("1"));
        let u = uuid_string(uuid_from("x"));
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "5");
        assert_eq!(
            parse_uuid(&format!("urn:uuid:{u}")).map(uuid_string),
            Some(u)
        );
    }

    #[test]
    fn escaping() {
        assert_eq!(
            xml_escape("a<b>&\"c'\u{1}\n"),
            "a&lt;b&gt;&amp;&quot;c&apos;&#10;"
        );
        assert_eq!(
            hl7_escape("O'Neil^Jr|x&y~z\\"),
            "O'Neil\\S\\Jr\\F\\x\\T\\y\\R\\z\\E\\"
        );
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[test]
    fn patient_cx_forms() {
        let mut r = SendRequest {
            patient_id: Some("22943847".into()),
            assigning_authority: Some("2.16.840.1.113883.3.9999".into()),
            ..Default::default()
        };
        assert_eq!(
            patient_cx(&r).as_deref(),
            Some("22943847^^^&2.16.840.1.113883.3.9999&ISO")
        );
        r.assigning_authority = None;
        r.patient_id_type = Some("1.2.3".into());
        assert_eq!(patient_cx(&r).as_deref(), Some("22943847^^^&1.2.3&ISO"));
        r.patient_id_type = Some("MR".into());
        assert_eq!(patient_cx(&r), None);
    }

    #[test]
    fn document_codes() {
        let mut r = SendRequest {
            loinc_name: Some("Referral Note".into()),
            loinc_value: Some("LOINC".into()),
            ..Default::default()
        };
        assert_eq!(
            document_code(&r),
            Some(("57133-1".into(), LOINC_OID.into(), "Referral Note".into()))
        );
        r.loinc_name = Some("34133-9".into());
        assert_eq!(document_code(&r).map(|c| c.0), Some("34133-9".into()));
        r.loinc_name = Some("Visit".into());
        r.loinc_value = Some("1.2.3".into());
        assert_eq!(
            document_code(&r),
            Some(("Visit".into(), "1.2.3".into(), "Visit".into()))
        );
        r.loinc_name = None;
        assert_eq!(document_code(&r), None);
    }

    #[test]
    fn extensions_and_sniffing() {
        assert_eq!(extension_for("text/xml"), "xml");
        assert_eq!(extension_for("application/hl7-v3+xml"), "xml");
        assert_eq!(extension_for("application/pdf"), "pdf");
        assert_eq!(extension_for("text/plain"), "txt");
        assert_eq!(extension_for("text/html"), "html");
        assert_eq!(extension_for("image/jpeg"), "jpg");
        assert_eq!(extension_for("image/png"), "png");
        assert_eq!(extension_for("application/x-foo"), "bin");
        assert_eq!(sniff_mime(b"%PDF-1.6"), "application/pdf");
        assert_eq!(sniff_mime(b"\xEF\xBB\xBF<?xml version"), "text/xml");
        assert_eq!(sniff_mime(b"hello"), "application/octet-stream");
        assert_eq!(sanitize("../../etc/passwd", 64), "_.._etc_passwd");
        assert_eq!(sanitize("résumé", 64), "r_sum_");
    }
}
