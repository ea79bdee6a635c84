//! Results written as files into a folder (local or FTP/FTPS/SFTP).
//!
//! Each file is written under a temporary name and renamed into place, so the
//! practice system never reads half a file. A GDT result comes with its PDF
//! report: the PDF is written first, the GDT record (which references it) last,
//! so whoever sees the record finds the report. An existing file of the same name
//! is never overwritten: the practice system has not collected the previous result
//! yet, and the delivery waits and retries.

use medrelay_folder::{Folder, FolderError};
use medrelay_store::{Delivery, Store};

use super::DeliveryError;
use crate::clock::hl7_timestamp;

pub struct FolderDestination {
    folder: Folder,
    /// File name pattern (see [`FolderDestination::file_name`]).
    pattern: String,
    store: Store,
    channel: String,
}

impl FolderDestination {
    pub fn new(folder: Folder, pattern: String, store: Store, channel: String) -> Self {
        FolderDestination {
            folder,
            pattern,
            store,
            channel,
        }
    }

    pub async fn send(&mut self, d: &Delivery) -> Result<Option<Vec<u8>>, DeliveryError> {
        let gdt = gdt::parse(&d.payload).ok();
        let name = self.file_name(d, gdt.as_ref());
        if let Some(pdf_name) = gdt.as_ref().and_then(pdf_name) {
            let pdf = self
                .store
                .pdf_for_message(d.message_id)
                .await
                .map_err(|e| DeliveryError::retry(format!("reading the PDF report: {e}")))?;
            if let Some(pdf) = pdf {
                // Written again on a retry: the same bytes under the same name.
                self.folder
                    .write_atomic(&pdf_name, &pdf, true)
                    .await
                    .map_err(|e| folder_error(&self.folder, &pdf_name, e))?;
            }
        }
        self.folder
            .write_atomic(&name, &d.payload, false)
            .await
            .map_err(|e| folder_error(&self.folder, &name, e))?;
        Ok(Some(format!("written {name}").into_bytes()))
    }

    /// The pattern with its placeholders filled: `{receiver}` and `{sender}` (GDT
    /// 8315/8316 of the result), `{id}` (the result's own id: GDT 6302, else the
    /// message's control id), `{control_id}`, `{message_id}`, `{delivery_id}`,
    /// `{channel}`, `{type}` (HL7 message type), `{timestamp}`. Anything a file system could trip on becomes `_`.
    fn file_name(&self, d: &Delivery, gdt: Option<&gdt::Record>) -> String {
        let hl7 = hl7v2::Message::parse(&d.payload).ok();
        let control_id = hl7
            .as_ref()
            .and_then(|m| m.header().control_id().map(|v| v.to_string()))
            .unwrap_or_default();
        let field = |id: u16| {
            gdt.and_then(|r| gdt::FieldId::new(id).and_then(|f| r.get(f)))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let id = match field(6302) {
            s if s.is_empty() => control_id.clone(),
            s => s,
        };
        let ty = hl7
            .as_ref()
            .map(|m| m.header().message_type_string())
            .unwrap_or_default();
        let name = self
            .pattern
            .replace("{type}", &ty)
            .replace("{receiver}", &field(8315))
            .replace("{sender}", &field(8316))
            .replace("{id}", &id)
            .replace("{control_id}", &control_id)
            .replace("{message_id}", &d.message_id.to_string())
            .replace("{delivery_id}", &d.id.to_string())
            .replace("{channel}", &self.channel)
            .replace(
                "{timestamp}",
                hl7_timestamp(d.created_at).get(..14).unwrap_or(""),
            );
        let clean = clean_name(&name);
        if clean.is_empty() {
            format!("{}.dat", d.id)
        } else {
            clean
        }
    }
}

/// The PDF's file name: the last part of the GDT file reference (6305), which
/// the result was built to point at the same folder.
fn pdf_name(record: &gdt::Record) -> Option<String> {
    let reference = record.get(gdt::FieldId::new(6305)?)?;
    let base = reference.rsplit(['\\', '/']).next()?;
    let clean = clean_name(base);
    (!clean.is_empty()).then_some(clean)
}

fn clean_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '^') {
                c
            } else {
                '_'
            }
        })
        .collect();
    clean.trim_start_matches('.').to_string()
}

fn folder_error(folder: &Folder, name: &str, e: FolderError) -> DeliveryError {
    let message = match &e {
        FolderError::Exists { .. } => format!(
            "{name} is still in {}: the previous result has not been collected yet",
            folder.spec().display()
        ),
        _ => format!("writing {name} to {}: {e}", folder.spec().display()),
    };
    DeliveryError {
        message,
        // Waiting helps with a full name slot and with a server that is away;
        // a bad configuration (a name that is refused) needs a person.
        retryable: matches!(e, FolderError::Exists { .. }) || e.is_retryable(),
        response: None,
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdf_names_come_from_the_reference() {
        let mut r = gdt::Record::new(gdt::RecordType::ExaminationData);
        r.push(gdt::FieldId::new(6305).unwrap(), "C:\\GDT\\out\\4711.pdf");
        assert_eq!(pdf_name(&r).as_deref(), Some("4711.pdf"));
        r.set(gdt::FieldId::new(6305).unwrap(), "../../etc/passwd");
        assert_eq!(pdf_name(&r).as_deref(), Some("passwd"));
        assert_eq!(clean_name("..\\x y"), "_x_y");
    }
}
