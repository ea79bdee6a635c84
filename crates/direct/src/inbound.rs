//! The JSON a receiving edge gets: the seed's inbound payload, the same shape
//! as the send request, addressed to one recipient.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::api::SendRequest;

/// The inbound payload for `recipient`. With `xdm_zip` (file name, zip bytes)
/// the attachment list holds the single XDM package; otherwise the sender's
/// attachments are passed on as they came.
pub fn inbound_payload(
    req: &SendRequest,
    recipient: &str,
    xdm_zip: Option<(&str, &[u8])>,
) -> Value {
    let mut value = serde_json::to_value(req).unwrap_or_else(|_| Value::Object(Map::new()));
    let Value::Object(obj) = &mut value else {
        return value;
    };
    // Each edge sees only itself: the other recipients of a multi-recipient
    // message are not its business.
    obj.insert(
        "toDirectAddress".into(),
        Value::String(recipient.to_string()),
    );
    if let Some((name, zip)) = xdm_zip {
        obj.insert(
            "emailAttachmentList".into(),
            json!([{
                "attachmentClass": "application/zip",
                "attachmentContent": STANDARD.encode(zip),
                "attachmentTitle": name,
                "attachmentFileName": name,
            }]),
        );
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Attachment;

    fn req() -> SendRequest {
        SendRequest {
            from_direct_address: "john@a.example.org".into(),
            to_direct_address: "x@b.example.org,y@c.example.org".into(),
            message_id: "urn:uuid:1".into(),
            email_attachment_list: vec![Attachment {
                attachment_class: Some("text/plain".into()),
                attachment_content: STANDARD.encode("hello"),
                attachment_title: Some("Note".into()),
                attachment_file_name: None,
            }],
            message_subject: Some("Subj".into()),
            xdm: Some(false),
            asm_enabled: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn inbound_raw_keeps_attachments_and_narrows_recipient() {
        let v = inbound_payload(&req(), "y@c.example.org", None);
        assert_eq!(v["toDirectAddress"], "y@c.example.org");
        assert_eq!(v["fromDirectAddress"], "john@a.example.org");
        assert_eq!(v["messageId"], "urn:uuid:1");
        assert_eq!(v["messageSubject"], "Subj");
        assert_eq!(v["xdm"], false);
        assert_eq!(v["asmEnabled"], true);
        let list = v["emailAttachmentList"].as_array().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["attachmentClass"], "text/plain");
        assert_eq!(list[0]["attachmentContent"], STANDARD.encode("hello"));
        assert!(list[0].get("attachmentFileName").is_none());
        // Absent optional fields stay absent rather than null.
        assert!(v.get("patientId").is_none());
        // Same shape as a send request: it parses back.
        let back: SendRequest = serde_json::from_value(v).unwrap();
        assert_eq!(back.email_attachment_list, req().email_attachment_list);
    }

    #[test]
    fn inbound_xdm_holds_one_zip_attachment() {
        let zip = b"PK\x03\x04 not really";
        let v = inbound_payload(&req(), "x@b.example.org", Some(("pkg-xdm.zip", zip)));
        assert_eq!(v["toDirectAddress"], "x@b.example.org");
        let list = v["emailAttachmentList"].as_array().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["attachmentClass"], "application/zip");
        assert_eq!(list[0]["attachmentTitle"], "pkg-xdm.zip");
        assert_eq!(list[0]["attachmentFileName"], "pkg-xdm.zip");
        let content = list[0]["attachmentContent"].as_str().unwrap();
        assert_eq!(STANDARD.decode(content).unwrap(), zip);
    }
}
