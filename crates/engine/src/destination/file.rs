//! Writes each payload to a folder. A reader never sees half a file: the bytes go
//! to a hidden temporary name, are synced, then renamed into place.

use std::path::PathBuf;

use medrelay_store::Delivery;
use tokio::io::AsyncWriteExt;

use super::DeliveryError;
use crate::EngineError;
use crate::clock::hl7_timestamp;

pub struct FileDestination {
    dir: PathBuf,
    pattern: String,
    channel: String,
}

impl FileDestination {
    pub fn new(dir: PathBuf, pattern: String, channel: String) -> Result<Self, EngineError> {
        if pattern.contains('/') || pattern.contains('\\') {
            return Err(EngineError::Config(format!(
                "file pattern {pattern:?} must be a file name, not a path"
            )));
        }
        Ok(FileDestination {
            dir,
            pattern,
            channel,
        })
    }

    pub async fn send(&mut self, d: &Delivery) -> Result<Option<Vec<u8>>, DeliveryError> {
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| DeliveryError::retry(format!("creating {}: {e}", self.dir.display())))?;
        let name = self.file_name(d);
        let target = self.dir.join(&name);
        let temp = self.dir.join(format!(".{name}.{}.tmp", d.id));
        let write = async {
            let mut f = tokio::fs::File::create(&temp).await?;
            f.write_all(&d.payload).await?;
            f.sync_all().await?;
            drop(f);
            tokio::fs::rename(&temp, &target).await
        };
        if let Err(e) = write.await {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(DeliveryError::retry(format!(
                "writing {}: {e}",
                target.display()
            )));
        }
        Ok(None)
    }

    /// Placeholders filled from the message; anything a file system could trip on
    /// (separators, dots at the start, control characters) becomes `_`.
    fn file_name(&self, d: &Delivery) -> String {
        let (control_id, ty) = match hl7v2::Message::parse(&d.payload) {
            Ok(m) => {
                let h = m.header();
                (
                    h.control_id().map(|v| v.to_string()).unwrap_or_default(),
                    h.message_type_string(),
                )
            }
            Err(_) => (String::new(), String::new()),
        };
        let name = self
            .pattern
            .replace("{control_id}", &control_id)
            .replace("{message_id}", &d.message_id.to_string())
            .replace("{delivery_id}", &d.id.to_string())
            .replace("{channel}", &self.channel)
            .replace("{type}", &ty)
            .replace("{timestamp}", &hl7_timestamp(d.created_at)[..14]);
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
        let clean = clean.trim_start_matches('.').to_string();
        if clean.is_empty() {
            format!("{}.hl7", d.id)
        } else {
            clean
        }
    }
}
