//! The XDM package: unzipped with the zip crate, METADATA.XML parsed with
//! quick-xml (namespace-aware) and checked against the decoded attachments.

use std::io::{Cursor, Read};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use medrelay_direct::{
    Attachment, SendRequest, XdmError, decode_attachments, inbound_payload, package, xdm_file_name,
};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use sha1::{Digest, Sha1};

const RIM: &str = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0";
const LCM: &str = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0";
const SS_ID: &str = "urn:uuid:0f6a2a3e-5a3b-4c2e-9d7e-3b1c2d4e5f60";
const AT: i64 = 1_586_531_439_000; // 2020-04-10 15:10:39 UTC

const CDA: &str =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?><ClinicalDocument xmlns=\"urn:hl7-org:v3\"/>";
const PDF: &[u8] = b"%PDF-1.6\r%\xe2\xe3\xcf\xd3\r\n1 0 obj<<>>endobj\r%%EOF\r";

fn seed_request() -> SendRequest {
    SendRequest {
        from_direct_address: "john@medalliestestdomain.com".into(),
        to_direct_address: "smith@medalliestestdomain.com,jones@Other.example.org".into(),
        message_id: "urn:uuid:a2d59543-91f4-45a4-99ef-72d70da1e454".into(),
        email_attachment_list: vec![
            Attachment {
                attachment_class: Some("text/xml".into()),
                attachment_content: STANDARD.encode(CDA),
                attachment_title: Some("MR-Lumbar Spine without contrast_1".into()),
                attachment_file_name: None,
            },
            Attachment {
                attachment_class: Some("application/pdf".into()),
                attachment_content: STANDARD.encode(PDF),
                attachment_title: Some("MR-Lumbar Spine <report> & \"notes\"".into()),
                attachment_file_name: None,
            },
        ],
        message_body: Some("Clinical Report for Patient Ralph Kramden.".into()),
        message_subject: Some("Referral & report".into()),
        patient_address_street1: Some("328 Chauncey Street".into()),
        patient_address_street2: Some("Apt 3B".into()),
        patient_address_city: Some("Brooklyn".into()),
        patient_address_state: Some("NY".into()),
        patient_address_zip: Some("11233".into()),
        patient_dob: Some("19160226".into()),
        patient_gender: Some("M".into()),
        patient_id: Some("22943847".into()),
        assigning_authority: Some("2.16.840.1.113883.3.9999".into()),
        patient_id_type: Some("2.16.840.1.113669.2013.2.4.880061800.0".into()),
        patient_lastname: Some("Kramden".into()),
        patient_firstname: Some("Ralph".into()),
        patient_middlename: Some("H".into()),
        xdm: Some(true),
        loinc_name: Some("Referral Note".into()),
        loinc_value: Some("LOINC".into()),
        author_person: Some("Doctor".into()),
        author_institution: Some("Some Hospital^^^^^^^^^2.999.1.2.3.5.8.9.1789.45".into()),
        ..Default::default()
    }
}

fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut f = archive.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (f.name().unwrap().to_string(), data)
        })
        .collect()
}

/// A parsed element: namespace, local name, attributes, text, parent.
#[derive(Debug)]
struct El {
    ns: String,
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    parent: Option<usize>,
}

impl El {
    fn attr(&self, k: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

fn parse_xml(xml: &str) -> Vec<El> {
    let mut reader = NsReader::from_str(xml);
    let mut els: Vec<El> = Vec::new();
    let mut stack: Vec<usize> = Vec::new();
    loop {
        let (ns, ev) = reader
            .read_resolved_event()
            .expect("well-formed METADATA.XML");
        let ns = match ns {
            ResolveResult::Bound(n) => String::from_utf8(n.as_ref().to_vec()).unwrap(),
            _ => String::new(),
        };
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let attrs = e
                    .attributes()
                    .map(|a| {
                        let a = a.unwrap();
                        (
                            String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                            a.unescape_value().unwrap().into_owned(),
                        )
                    })
                    .collect();
                els.push(El {
                    ns,
                    name: String::from_utf8(e.local_name().as_ref().to_vec()).unwrap(),
                    attrs,
                    text: String::new(),
                    parent: stack.last().copied(),
                });
                if matches!(ev, Event::Start(_)) {
                    stack.push(els.len() - 1);
                }
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Text(t) => {
                if let Some(&i) = stack.last() {
                    els[i].text.push_str(&t.decode().unwrap());
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().unwrap() {
                    Some(c) => c.to_string(),
                    None => quick_xml::escape::resolve_predefined_entity(&r.decode().unwrap())
                        .expect("only predefined entities")
                        .to_string(),
                };
                if let Some(&i) = stack.last() {
                    els[i].text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(stack.is_empty());
    els
}

fn children<'a>(
    els: &'a [El],
    parent: usize,
    name: &'a str,
) -> impl Iterator<Item = (usize, &'a El)> {
    els.iter()
        .enumerate()
        .filter(move |(_, e)| e.parent == Some(parent) && e.name == name)
}

/// The values of slot `name` directly under element `owner`.
fn slot(els: &[El], owner: usize, name: &str) -> Vec<String> {
    let Some((s, _)) = children(els, owner, "Slot").find(|(_, e)| e.attr("name") == Some(name))
    else {
        return Vec::new();
    };
    let Some((list, _)) = children(els, s, "ValueList").next() else {
        return Vec::new();
    };
    children(els, list, "Value")
        .map(|(_, e)| e.text.clone())
        .collect()
}

fn sha1_hex(b: &[u8]) -> String {
    Sha1::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn package_entry_names() {
    let zip = package(&seed_request(), SS_ID, AT).unwrap();
    let names: Vec<String> = unzip(&zip).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "INDEX.HTM",
            "README.TXT",
            "IHE_XDM/SUBSET01/METADATA.XML",
            "IHE_XDM/SUBSET01/DOCUMENT_1.xml",
            "IHE_XDM/SUBSET01/DOCUMENT_2.pdf",
        ]
    );
}

#[test]
fn package_documents_byte_identical() {
    let req = seed_request();
    let decoded = decode_attachments(&req).unwrap();
    let files = unzip(&package(&req, SS_ID, AT).unwrap());
    assert_eq!(files[3].1, decoded[0]);
    assert_eq!(files[4].1, decoded[1]);
    assert_eq!(files[3].1, CDA.as_bytes());
    assert_eq!(files[4].1, PDF);
}

#[test]
fn package_is_deterministic() {
    let a = package(&seed_request(), SS_ID, AT).unwrap();
    let b = package(&seed_request(), SS_ID, AT).unwrap();
    assert_eq!(a, b);
}

#[test]
fn metadata_well_formed_and_complete() {
    let req = seed_request();
    let files = unzip(&package(&req, SS_ID, AT).unwrap());
    let xml = String::from_utf8(files[2].1.clone()).unwrap();
    let els = parse_xml(&xml);

    assert_eq!(els[0].name, "SubmitObjectsRequest");
    assert_eq!(els[0].ns, LCM);
    assert!(els[1..].iter().all(|e| e.ns == RIM), "all children in rim:");
    assert!(xml.contains("xmlns:rs=\"urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0\""));

    let cx = "22943847^^^&2.16.840.1.113883.3.9999&ISO";
    let docs: Vec<(usize, &El)> = els
        .iter()
        .enumerate()
        .filter(|(_, e)| e.name == "ExtrinsicObject")
        .collect();
    assert_eq!(docs.len(), 2);
    let expected = [
        (
            "DOCUMENT_1.xml",
            "text/xml",
            CDA.as_bytes(),
            "MR-Lumbar Spine without contrast_1",
        ),
        (
            "DOCUMENT_2.pdf",
            "application/pdf",
            PDF,
            "MR-Lumbar Spine <report> & \"notes\"",
        ),
    ];
    for ((i, doc), (uri, mime, bytes, title)) in docs.iter().zip(expected) {
        assert_eq!(
            doc.attr("objectType"),
            Some("urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1")
        );
        assert_eq!(doc.attr("mimeType"), Some(mime));
        assert_eq!(slot(&els, *i, "URI"), [uri]);
        assert_eq!(slot(&els, *i, "hash"), [sha1_hex(bytes)]);
        assert_eq!(slot(&els, *i, "size"), [bytes.len().to_string()]);
        assert_eq!(slot(&els, *i, "creationTime"), ["20200410151039"]);
        assert_eq!(slot(&els, *i, "sourcePatientId"), [cx]);
        assert_eq!(
            slot(&els, *i, "sourcePatientInfo"),
            [
                format!("PID-3|{cx}"),
                "PID-5|Kramden^Ralph^H".into(),
                "PID-7|19160226".into(),
                "PID-8|M".into(),
                "PID-11|328 Chauncey Street^Apt 3B^Brooklyn^NY^11233".into(),
            ]
        );
        let (name, _) = children(&els, *i, "Name").next().unwrap();
        let (_, ls) = children(&els, name, "LocalizedString").next().unwrap();
        assert_eq!(ls.attr("value"), Some(title));

        let doc_id = doc.attr("id").unwrap();
        let classes: Vec<&El> = children(&els, *i, "Classification")
            .map(|(_, e)| e)
            .collect();
        let by_scheme = |s: &str| {
            classes
                .iter()
                .find(|c| c.attr("classificationScheme") == Some(s))
        };
        for c in &classes {
            assert_eq!(c.attr("classifiedObject"), Some(doc_id));
        }
        let class_code = by_scheme("urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a").unwrap();
        assert_eq!(class_code.attr("nodeRepresentation"), Some("57133-1"));
        let type_code = by_scheme("urn:uuid:f0306f51-975f-434e-a61c-c59651d33983").unwrap();
        assert_eq!(type_code.attr("nodeRepresentation"), Some("57133-1"));
        let (ci, _) = children(&els, *i, "Classification")
            .find(|(_, c)| {
                c.attr("classificationScheme")
                    == Some("urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a")
            })
            .unwrap();
        assert_eq!(slot(&els, ci, "codingScheme"), ["2.16.840.1.113883.6.1"]);
        let (ai, _) = children(&els, *i, "Classification")
            .find(|(_, c)| {
                c.attr("classificationScheme")
                    == Some("urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d")
            })
            .unwrap();
        assert_eq!(slot(&els, ai, "authorPerson"), ["Doctor"]);
        assert_eq!(
            slot(&els, ai, "authorInstitution"),
            ["Some Hospital^^^^^^^^^2.999.1.2.3.5.8.9.1789.45"]
        );

        let ids: Vec<&El> = children(&els, *i, "ExternalIdentifier")
            .map(|(_, e)| e)
            .collect();
        let pid = ids
            .iter()
            .find(|e| {
                e.attr("identificationScheme")
                    == Some("urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427")
            })
            .unwrap();
        assert_eq!(pid.attr("value"), Some(cx));
        let uid = ids
            .iter()
            .find(|e| {
                e.attr("identificationScheme")
                    == Some("urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab")
            })
            .unwrap();
        assert!(uid.attr("value").unwrap().starts_with("2.25."));
    }

    // The submission set.
    let (ss, pkg) = els
        .iter()
        .enumerate()
        .find(|(_, e)| e.name == "RegistryPackage")
        .unwrap();
    assert_eq!(pkg.attr("id"), Some(SS_ID));
    assert_eq!(slot(&els, ss, "submissionTime"), ["20200410151039"]);
    assert_eq!(
        slot(&els, ss, "intendedRecipient"),
        [
            "||^^Internet^smith@medalliestestdomain.com",
            "||^^Internet^jones@other.example.org"
        ]
    );
    let ids: Vec<&El> = children(&els, ss, "ExternalIdentifier")
        .map(|(_, e)| e)
        .collect();
    let scheme = |s: &str| {
        ids.iter()
            .find(|e| e.attr("identificationScheme") == Some(s))
            .and_then(|e| e.attr("value"))
    };
    assert_eq!(
        scheme("urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"),
        Some(cx)
    );
    assert_eq!(
        scheme("urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"),
        Some("2.999.1.2.3.5.8.9.1789.45")
    );
    let ss_uid = scheme("urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8").unwrap();
    assert!(ss_uid.starts_with("2.25."));
    let (ssa, _) = children(&els, ss, "Classification")
        .find(|(_, c)| {
            c.attr("classificationScheme") == Some("urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d")
        })
        .unwrap();
    assert_eq!(
        slot(&els, ssa, "authorTelecommunication"),
        ["^^Internet^john@medalliestestdomain.com"]
    );

    // Classified as a submission set, at the list level.
    assert!(els.iter().any(|e| e.name == "Classification"
        && e.attr("classificationNode") == Some("urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd")
        && e.attr("classifiedObject") == Some(SS_ID)));

    // One HasMember association per document.
    let doc_ids: Vec<&str> = docs.iter().map(|(_, d)| d.attr("id").unwrap()).collect();
    let assocs: Vec<&El> = els.iter().filter(|e| e.name == "Association").collect();
    assert_eq!(assocs.len(), 2);
    for (a, id) in assocs.iter().zip(&doc_ids) {
        assert_eq!(
            a.attr("associationType"),
            Some("urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember")
        );
        assert_eq!(a.attr("sourceObject"), Some(SS_ID));
        assert_eq!(a.attr("targetObject"), Some(*id));
    }
    // Every object id is a real UUID URN, and unique.
    let mut all_ids: Vec<&str> = els.iter().filter_map(|e| e.attr("id")).collect();
    for id in &all_ids {
        let u = id.strip_prefix("urn:uuid:").unwrap_or("");
        let groups: Vec<usize> = u.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
        assert!(u.chars().all(|c| c == '-' || c.is_ascii_hexdigit()), "{id}");
    }
    let n = all_ids.len();
    all_ids.sort();
    all_ids.dedup();
    assert_eq!(all_ids.len(), n);
}

#[test]
fn metadata_escapes_hostile_text() {
    let mut req = seed_request();
    req.patient_lastname = Some("O'Brien^<x>&".into());
    req.message_subject = Some("]]> <!-- \"".into());
    req.author_person = Some("<script>".into());
    let files = unzip(&package(&req, "plain-id", AT).unwrap());
    let xml = String::from_utf8(files[2].1.clone()).unwrap();
    let els = parse_xml(&xml);
    let (i, _) = els
        .iter()
        .enumerate()
        .find(|(_, e)| e.name == "ExtrinsicObject")
        .unwrap();
    assert!(
        slot(&els, i, "sourcePatientInfo")
            .contains(&"PID-5|O'Brien\\S\\<x>\\T\\^Ralph^H".to_string())
    );
    let index = String::from_utf8(files[0].1.clone()).unwrap();
    assert!(!index.contains("<!--"));
}

#[test]
fn metadata_without_patient_omits_patient_id() {
    let mut req = seed_request();
    req.patient_id = None;
    let files = unzip(&package(&req, SS_ID, AT).unwrap());
    let xml = String::from_utf8(files[2].1.clone()).unwrap();
    let els = parse_xml(&xml);
    assert!(!xml.contains("58a6f841-87b3-4a3e-92fd-a8ffeff98427"));
    assert!(!xml.contains("6b5aea1a-874d-4603-a4bc-96a0a7b38446"));
    assert!(els.iter().any(|e| e.name == "ExtrinsicObject"));
}

#[test]
fn file_names_from_attachment_file_name() {
    let mut req = seed_request();
    req.attachment_file_name = Some("Kramden referral".into());
    let names: Vec<String> = unzip(&package(&req, SS_ID, AT).unwrap())
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names[3], "IHE_XDM/SUBSET01/Kramden_referral_1.xml");
    assert_eq!(names[4], "IHE_XDM/SUBSET01/Kramden_referral_2.pdf");

    req.email_attachment_list[0].attachment_file_name = Some("ccda".into());
    req.email_attachment_list[1].attachment_file_name = Some("CCDA".into());
    req.email_attachment_list[1].attachment_class = Some("text/xml".into());
    let names: Vec<String> = unzip(&package(&req, SS_ID, AT).unwrap())
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names[3], "IHE_XDM/SUBSET01/ccda.xml");
    assert_eq!(names[4], "IHE_XDM/SUBSET01/CCDA_2.xml");

    let mut one = seed_request();
    one.email_attachment_list.truncate(1);
    one.attachment_file_name = Some("summary.xml".into());
    let names: Vec<String> = unzip(&package(&one, SS_ID, AT).unwrap())
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names[3], "IHE_XDM/SUBSET01/summary.xml");
}

#[test]
fn unknown_class_gets_bin_and_missing_class_is_sniffed() {
    let mut req = seed_request();
    req.email_attachment_list[0].attachment_class = Some("application/x-custom".into());
    req.email_attachment_list[1].attachment_class = None;
    let files = unzip(&package(&req, SS_ID, AT).unwrap());
    assert_eq!(files[3].0, "IHE_XDM/SUBSET01/DOCUMENT_1.bin");
    assert_eq!(files[4].0, "IHE_XDM/SUBSET01/DOCUMENT_2.pdf");
    let xml = String::from_utf8(files[2].1.clone()).unwrap();
    assert!(xml.contains("mimeType=\"application/x-custom\""));
    assert!(xml.contains("mimeType=\"application/pdf\""));
}

#[test]
fn bad_base64_is_an_xdm_error_with_index() {
    let mut req = seed_request();
    req.email_attachment_list[1].attachment_content = "***".into();
    match package(&req, SS_ID, AT) {
        Err(XdmError::Base64(1)) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn index_and_readme_point_at_documents() {
    let files = unzip(&package(&seed_request(), SS_ID, AT).unwrap());
    let index = String::from_utf8(files[0].1.clone()).unwrap();
    assert!(index.contains("href=\"IHE_XDM/SUBSET01/DOCUMENT_1.xml\""));
    assert!(index.contains("href=\"IHE_XDM/SUBSET01/DOCUMENT_2.pdf\""));
    assert!(index.contains("Referral &amp; report"));
    let readme = String::from_utf8(files[1].1.clone()).unwrap();
    assert!(readme.contains("john@medalliestestdomain.com"));
    assert!(readme.contains("IHE_XDM/SUBSET01/DOCUMENT_2.pdf"));
}

#[test]
fn inbound_payload_with_xdm_package() {
    let req = seed_request();
    let name = xdm_file_name(&req);
    let zip = package(&req, SS_ID, AT).unwrap();
    let v = inbound_payload(&req, "smith@medalliestestdomain.com", Some((&name, &zip)));
    assert_eq!(v["toDirectAddress"], "smith@medalliestestdomain.com");
    let list = v["emailAttachmentList"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[0]["attachmentFileName"],
        "msg-a2d59543-91f4-45a4-99ef-72d70da1e454-xdm.zip"
    );
    let back = STANDARD
        .decode(list[0]["attachmentContent"].as_str().unwrap())
        .unwrap();
    assert_eq!(back, zip);
    assert_eq!(unzip(&back).len(), 5);
}
