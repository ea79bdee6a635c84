//! send_ccda body validation, against the seed's examples and each rule.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use medrelay_direct::{
    FieldError, SendRequest, SendResponse, StatusResponse, decode_attachments, domain_of,
    is_direct_address, parse_send, recipients,
};
use serde_json::{Value, json};

const CDA: &str =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?><ClinicalDocument xmlns=\"urn:hl7-org:v3\"/>";
const PDF: &[u8] = b"%PDF-1.6\r%\xe2\xe3\xcf\xd3\r\n36 0 obj\r<</Li...%%EOF\r";

/// The seed's first example, with real Base64 in place of its "..." elisions.
fn seed_single() -> Value {
    json!({
        "fromDirectAddress" : "john@medalliestestdomain.com",
        "toDirectAddress" : "smith@medalliestestdomain.com",
        "emailAttachmentList" : [
            {
                "attachmentClass" : "text/xml",
                "attachmentContent" : STANDARD.encode(CDA),
                "attachmentTitle" : "MR-Lumbar Spine without contrast_1"
            },
            {
                "attachmentClass" : "application/pdf",
                "attachmentContent" : STANDARD.encode(PDF),
                "attachmentTitle" : "MR-Lumbar Spine without contrast_report"
            }
        ],
        "messageBody" : "Clinical Report for Patient Ralph Kramden. Please find attached clinical report",
        "messageId" : "urn:uuid:a2d59543-91f4-45a4-99ef-72d70da1e454",
        "messageSubject" : "Custom messageSubject 3 . TXT file, XDM: false",
        "patientAddressStreet1" : "328 Chauncey Street",
        "patientAddressStreet2" : "Apt 3B",
        "patientAddressCity" : "Brooklyn",
        "patientAddressState" : "NY",
        "patientAddressZip" : "11233",
        "patientDOB" : "19160226",
        "patientGender" : "M",
        "patientId" : "22943847",
        "assigning_authority" : "2.16.840.1.113883.3.9999",
        "patientIdType" : "2.16.840.1.113669.2013.2.4.880061800.0",
        "patientLastname" : "Kramden",
        "patientFirstname" : "Ralph",
        "patientMiddlename" : "H",
        "patient_summary" : "Name (last, first middle): Kramden, Ralph H\nAddress: 328 Chauncey Street, Apt 3B, Brooklyn NY 11233\nGender: M\nDOB: 19160226",
        "replyToMessageId" : "2ea5021a-0c52-470a-8635-7aee90e5be34",
        "xdm" : true,
        "asmEnabled" : true,
        "loincName" : "Referral Note",
        "loincValue" : "LOINC",
        "authorPerson" : "Doctor",
        "authorInstitution" : "Some Hospital^^^^^^^^^2.999.1.2.3.5.8.9.1789.45"
    })
}

/// The seed's multi-recipient example.
fn seed_multi() -> Value {
    let mut v = seed_single();
    let o = v.as_object_mut().unwrap();
    o.insert(
        "fromDirectAddress".into(),
        json!("someuser@medalliesdirect.net"),
    );
    o.insert(
        "toDirectAddress".into(),
        json!("someuser@medalliesdirect.net,someotheruser@medalliesdirect.net"),
    );
    o.insert("messageSubject".into(), json!("F"));
    for k in [
        "asmEnabled",
        "loincName",
        "loincValue",
        "authorPerson",
        "authorInstitution",
    ] {
        o.remove(k);
    }
    v
}

fn parse(v: &Value) -> Result<SendRequest, FieldError> {
    parse_send(&serde_json::to_vec(v).unwrap())
}

fn field_of(v: &Value) -> String {
    parse(v).expect_err("should be rejected").field
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v.as_object_mut().unwrap().insert(key.into(), value);
    v
}

fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

#[test]
fn seed_single_recipient_example_parses() {
    let r = parse(&seed_single()).unwrap();
    assert_eq!(r.from_direct_address, "john@medalliestestdomain.com");
    assert_eq!(
        r.message_id,
        "urn:uuid:a2d59543-91f4-45a4-99ef-72d70da1e454"
    );
    assert_eq!(r.email_attachment_list.len(), 2);
    assert_eq!(
        r.email_attachment_list[0].attachment_class.as_deref(),
        Some("text/xml")
    );
    assert_eq!(r.patient_dob.as_deref(), Some("19160226"));
    assert_eq!(
        r.assigning_authority.as_deref(),
        Some("2.16.840.1.113883.3.9999")
    );
    assert!(
        r.patient_summary
            .as_deref()
            .unwrap()
            .starts_with("Name (last")
    );
    assert_eq!(r.xdm, Some(true));
    assert_eq!(r.asm_enabled, Some(true));
    assert_eq!(r.loinc_name.as_deref(), Some("Referral Note"));
    assert_eq!(
        r.author_institution.as_deref(),
        Some("Some Hospital^^^^^^^^^2.999.1.2.3.5.8.9.1789.45")
    );
    let docs = decode_attachments(&r).unwrap();
    assert_eq!(docs[0], CDA.as_bytes());
    assert_eq!(docs[1], PDF);
}

#[test]
fn seed_multi_recipient_example_parses() {
    let r = parse(&seed_multi()).unwrap();
    assert_eq!(r.asm_enabled, None);
    assert_eq!(
        recipients(&r.to_direct_address).unwrap(),
        [
            "someuser@medalliesdirect.net",
            "someotheruser@medalliesdirect.net"
        ]
    );
}

#[test]
fn serialization_uses_seed_names_and_skips_none() {
    let r = parse(&seed_single()).unwrap();
    let v = serde_json::to_value(&r).unwrap();
    for k in [
        "fromDirectAddress",
        "toDirectAddress",
        "messageId",
        "emailAttachmentList",
        "patientDOB",
        "assigning_authority",
        "patient_summary",
        "patientIdType",
        "replyToMessageId",
        "asmEnabled",
        "xdm",
    ] {
        assert!(v.get(k).is_some(), "{k}");
    }
    assert_eq!(
        v["emailAttachmentList"][0]["attachmentTitle"],
        "MR-Lumbar Spine without contrast_1"
    );
    let minimal = parse(&seed_multi()).unwrap();
    let v = serde_json::to_value(&minimal).unwrap();
    assert!(v.get("asmEnabled").is_none());
    assert!(v.get("xdmFileName").is_none());
    assert!(
        v["emailAttachmentList"][0]
            .get("attachmentFileName")
            .is_none()
    );
}

#[test]
fn not_json_or_not_object_is_body() {
    assert_eq!(parse_send(b"{nope").unwrap_err().field, "body");
    assert_eq!(parse_send(b"[1,2]").unwrap_err().field, "body");
    assert_eq!(parse_send(b"\"x\"").unwrap_err().field, "body");
    assert_eq!(parse_send(b"").unwrap_err().field, "body");
}

#[test]
fn required_fields_missing() {
    for k in [
        "fromDirectAddress",
        "toDirectAddress",
        "messageId",
        "emailAttachmentList",
    ] {
        assert_eq!(field_of(&without(seed_single(), k)), k);
        assert_eq!(field_of(&with(seed_single(), k, Value::Null)), k);
    }
}

#[test]
fn required_fields_empty() {
    for k in ["fromDirectAddress", "toDirectAddress", "messageId"] {
        assert_eq!(field_of(&with(seed_single(), k, json!(""))), k);
        assert_eq!(field_of(&with(seed_single(), k, json!("   "))), k);
        assert_eq!(field_of(&with(seed_single(), k, json!(42))), k);
    }
    assert_eq!(
        field_of(&with(seed_single(), "emailAttachmentList", json!([]))),
        "emailAttachmentList"
    );
    assert_eq!(
        field_of(&with(seed_single(), "emailAttachmentList", json!({}))),
        "emailAttachmentList"
    );
}

#[test]
fn bad_sender_address() {
    for bad in [
        "john",
        "john@localhost",
        "jo hn@example.org",
        "a@b@example.org",
        "@example.org",
    ] {
        let e = parse(&with(seed_single(), "fromDirectAddress", json!(bad))).unwrap_err();
        assert_eq!(e.field, "fromDirectAddress", "{bad}");
    }
}

#[test]
fn bad_recipient_address() {
    let e = parse(&with(
        seed_single(),
        "toDirectAddress",
        json!("smith@medalliestestdomain.com, not-an-address"),
    ))
    .unwrap_err();
    assert_eq!(e.field, "toDirectAddress");
    assert!(e.message.contains("not-an-address"), "{}", e.message);
}

#[test]
fn attachment_content_missing_empty_or_bad_base64_names_index() {
    let mut v = seed_single();
    v["emailAttachmentList"][1]["attachmentContent"] =
        json!("JVBERi0xLjYNJeLjz9MNCjM2IDAgb2JqDTw8L0xp...4cmVmDTExNg0lJUVPRg0=");
    assert_eq!(field_of(&v), "emailAttachmentList[1].attachmentContent");
    for bad in [json!(""), json!("abc"), json!("ab$="), json!(7)] {
        let mut v = seed_single();
        v["emailAttachmentList"][0]["attachmentContent"] = bad.clone();
        assert_eq!(
            field_of(&v),
            "emailAttachmentList[0].attachmentContent",
            "{bad}"
        );
    }
    let mut v = seed_single();
    v["emailAttachmentList"][1]
        .as_object_mut()
        .unwrap()
        .remove("attachmentContent");
    assert_eq!(field_of(&v), "emailAttachmentList[1].attachmentContent");
    let mut v = seed_single();
    v["emailAttachmentList"][0] = json!("not an object");
    assert_eq!(field_of(&v), "emailAttachmentList[0]");
}

#[test]
fn base64_with_line_breaks_is_accepted() {
    let encoded = STANDARD.encode(CDA);
    let wrapped: String = encoded
        .as_bytes()
        .chunks(20)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n ");
    let mut v = seed_single();
    v["emailAttachmentList"][0]["attachmentContent"] = json!(wrapped);
    let r = parse(&v).unwrap();
    assert_eq!(decode_attachments(&r).unwrap()[0], CDA.as_bytes());
}

#[test]
fn decode_attachments_reports_index() {
    let mut r = parse(&seed_single()).unwrap();
    r.email_attachment_list[1].attachment_content = "%%%".into();
    assert_eq!(
        decode_attachments(&r).unwrap_err().field,
        "emailAttachmentList[1].attachmentContent"
    );
}

#[test]
fn attachment_class_must_be_media_type() {
    for bad in ["pdf", "text/", "/xml", "text xml/plain"] {
        let mut v = seed_single();
        v["emailAttachmentList"][1]["attachmentClass"] = json!(bad);
        assert_eq!(
            field_of(&v),
            "emailAttachmentList[1].attachmentClass",
            "{bad}"
        );
    }
    let mut v = seed_single();
    v["emailAttachmentList"][0]["attachmentClass"] = json!("text/xml; charset=utf-8");
    assert!(parse(&v).is_ok());
    let mut v = seed_single();
    v["emailAttachmentList"][0]
        .as_object_mut()
        .unwrap()
        .remove("attachmentClass");
    assert!(parse(&v).is_ok());
}

#[test]
fn file_names_reject_backslashes_and_controls() {
    for k in ["xdmFileName", "attachmentFileName"] {
        // The seed's own example of attachmentFileName is "attachment/ccda".
        assert!(parse(&with(seed_single(), k, json!("attachment/ccda"))).is_ok());
        assert_eq!(field_of(&with(seed_single(), k, json!("a\\b"))), k);
        assert_eq!(field_of(&with(seed_single(), k, json!("a\nb"))), k);
        assert!(parse(&with(seed_single(), k, json!("Kramden referral"))).is_ok());
    }
    let mut v = seed_single();
    v["emailAttachmentList"][0]["attachmentFileName"] = json!("..\\ccda");
    assert_eq!(field_of(&v), "emailAttachmentList[0].attachmentFileName");
}

#[test]
fn message_id_limits() {
    assert!(parse(&with(seed_single(), "messageId", json!("x".repeat(256)))).is_ok());
    assert_eq!(
        field_of(&with(seed_single(), "messageId", json!("x".repeat(257)))),
        "messageId"
    );
    assert_eq!(
        field_of(&with(seed_single(), "messageId", json!("a\u{0}b"))),
        "messageId"
    );
}

#[test]
fn optional_fields_must_be_strings() {
    assert_eq!(
        field_of(&with(seed_single(), "patientDOB", json!(19160226))),
        "patientDOB"
    );
    assert_eq!(
        field_of(&with(seed_single(), "assigning_authority", json!(["x"]))),
        "assigning_authority"
    );
    assert!(parse(&with(seed_single(), "patientId", Value::Null)).is_ok());
    // Unknown fields are tolerated: EHRs add their own.
    assert!(parse(&with(seed_single(), "vendorExtra", json!({"a": 1}))).is_ok());
}

#[test]
fn string_booleans() {
    for (given, expected) in [
        (json!(true), Some(true)),
        (json!(false), Some(false)),
        (json!("true"), Some(true)),
        (json!("false"), Some(false)),
        (json!("TRUE"), Some(true)),
        (Value::Null, None),
    ] {
        let r = parse(&with(
            with(seed_single(), "xdm", given.clone()),
            "asmEnabled",
            given.clone(),
        ))
        .unwrap();
        assert_eq!(r.xdm, expected, "{given}");
        assert_eq!(r.asm_enabled, expected, "{given}");
    }
    assert_eq!(field_of(&with(seed_single(), "xdm", json!("yes"))), "xdm");
    assert_eq!(
        field_of(&with(seed_single(), "asmEnabled", json!(1))),
        "asmEnabled"
    );
    // Serialized back as real booleans.
    let r = parse(&with(seed_single(), "asmEnabled", json!("true"))).unwrap();
    assert_eq!(serde_json::to_value(&r).unwrap()["asmEnabled"], json!(true));
}

#[test]
fn recipients_split_trim_lowercase_dedup() {
    assert_eq!(
        recipients(" a@X.Example.ORG , b@y.example.org,a@x.example.org,,B@y.example.org ").unwrap(),
        ["a@x.example.org", "b@y.example.org", "B@y.example.org"]
    );
    assert_eq!(recipients("a@x.example.org,").unwrap(), ["a@x.example.org"]);
    assert_eq!(recipients("").unwrap_err().field, "toDirectAddress");
    assert_eq!(recipients(" , ").unwrap_err().field, "toDirectAddress");
}

#[test]
fn at_most_100_recipients() {
    let hundred: Vec<String> = (0..100).map(|i| format!("u{i}@example.org")).collect();
    assert_eq!(recipients(&hundred.join(",")).unwrap().len(), 100);
    // Duplicates do not count against the limit.
    let with_dups = format!("{},u0@example.org,u1@EXAMPLE.org", hundred.join(","));
    assert_eq!(recipients(&with_dups).unwrap().len(), 100);
    let many: Vec<String> = (0..101).map(|i| format!("u{i}@example.org")).collect();
    let e = recipients(&many.join(",")).unwrap_err();
    assert_eq!(e.field, "toDirectAddress");
    assert_eq!(
        field_of(&with(
            seed_single(),
            "toDirectAddress",
            json!(many.join(","))
        )),
        "toDirectAddress"
    );
}

#[test]
fn direct_address_rules() {
    for ok in [
        "john@medalliestestdomain.com",
        "michael@orgabbrev.medalliesdirect.net",
        "first.last+tag@a-b.example.org",
    ] {
        assert!(is_direct_address(ok), "{ok}");
    }
    let long_local = format!("{}@example.org", "a".repeat(65));
    let long_total = format!("a@{}.org", "b.".repeat(130));
    for bad in [
        "",
        "john",
        "john@",
        "@example.org",
        "john@example",
        "jo hn@example.org",
        "john@exa mple.org",
        "a@b@example.org",
        ".john@example.org",
        "jo..hn@example.org",
        "john@-example.org",
        "john@example..org",
        "<john@example.org>",
        "jöhn@example.org",
        long_local.as_str(),
        long_total.as_str(),
    ] {
        assert!(!is_direct_address(bad), "{bad}");
    }
}

#[test]
fn domain_of_lowercases() {
    assert_eq!(
        domain_of("John@Example.ORG").as_deref(),
        Some("example.org")
    );
    assert_eq!(domain_of("nodomain"), None);
    assert_eq!(domain_of("x@"), None);
}

#[test]
fn field_error_display() {
    let e = FieldError {
        field: "messageId".into(),
        message: "is required".into(),
    };
    assert_eq!(e.to_string(), "messageId: is required");
}

#[test]
fn response_shapes_match_seed() {
    let r = SendResponse {
        message_id: "urn:uuid:a2d59543-91f4-45a4-99ef-72d70da1e454".into(),
        status: "SUCCESS".into(),
        transaction_id: "95f8ad81-061f-48d3-b1a2-af6cf8d9954e".into(),
        result: "Message parse successfully".into(),
    };
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        json!({
            "messageId": "urn:uuid:a2d59543-91f4-45a4-99ef-72d70da1e454",
            "status": "SUCCESS",
            "transactionId": "95f8ad81-061f-48d3-b1a2-af6cf8d9954e",
            "result": "Message parse successfully"
        })
    );
    let seed_failed = json!({
        "sender": "john@medalliestestdomain.com",
        "recipient": "smith@medalliestestdomain.com",
        "xdMsgId": "AVC32-fc440f05-3257-40c1-a3e8-a9b629f82735",
        "sendTime": "2018-11-27 13:15:04.0",
        "status": "FAILED",
        "failureReason": "9002: "
    });
    let s: StatusResponse = serde_json::from_value(seed_failed.clone()).unwrap();
    assert_eq!(s.failure_reason.as_deref(), Some("9002: "));
    assert_eq!(serde_json::to_value(&s).unwrap(), seed_failed);
    let processed = StatusResponse {
        failure_reason: None,
        status: "PROCESSED".into(),
        ..s
    };
    assert!(
        serde_json::to_value(&processed)
            .unwrap()
            .get("failureReason")
            .is_none()
    );
}

#[test]
fn sender_address_is_trimmed() {
    let r = parse(&with(
        seed_single(),
        "fromDirectAddress",
        json!("  john@medalliestestdomain.com "),
    ))
    .unwrap();
    assert_eq!(r.from_direct_address, "john@medalliestestdomain.com");
}
