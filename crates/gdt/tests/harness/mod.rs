//! The fuzz harness, shared by `fuzz/fuzz_targets/parse.rs` (cargo-fuzz, nightly) and
//! `tests/smoke_fuzz.rs` (proptest, stable). It must never panic on any input except
//! when an invariant of the crate is broken.

use gdt::{Error, ParseOptions, Record, WriteOptions, ids};

/// Parses `data` strictly and leniently, reads every typed accessor, writes what
/// parsed and checks that writing is stable and (for canonical input) byte-exact.
pub fn exercise(data: &[u8]) {
    let strict = ParseOptions::default();
    let lenient = ParseOptions::default().lenient_line_endings(true);
    let strict_result = gdt::parse_with(data, &strict);
    if let Ok(r) = &strict_result {
        check_record(r, &strict);
        // A strictly valid record with a 8100 of 5+ digits is written back byte for
        // byte: same fields, same charset, same lengths.
        let canonical_8100 = r
            .get(ids::RECORD_LENGTH)
            .is_some_and(|v| v.len() >= 5 && v.bytes().all(|b| b.is_ascii_digit()));
        if canonical_8100 {
            assert_eq!(r.to_bytes().expect("valid record writes"), data);
        }
        // Strictly valid input is leniently valid and reads the same.
        assert_eq!(gdt::parse_with(data, &lenient).as_ref(), Ok(r));
    }
    match gdt::parse_with(data, &lenient) {
        Ok(r) => check_record(&r, &lenient),
        Err(e) => {
            let _ = e.to_string();
            // Whatever the strict parser accepts, the lenient one accepts too.
            assert!(
                strict_result.is_err(),
                "lenient rejects what strict accepts: {e}"
            );
        }
    }
    if let Ok(all) = gdt::parse_all_with(data, &lenient) {
        assert!(!all.is_empty());
        for r in &all {
            let _ = r.to_bytes();
        }
    }
    if let Err(e) = &strict_result {
        let _ = e.to_string();
    }
}

fn check_record(r: &Record, opts: &ParseOptions) {
    assert!(r.record_type().is_some());
    read_everything(r);
    let out = match gdt::write(r, &WriteOptions::default()) {
        Ok(out) => out,
        // 8100 is given 5 digits when the input had fewer; a big record may not fit.
        Err(Error::RecordTooLong { .. }) => return,
        Err(e) => panic!("a parsed record must be writable: {e}"),
    };
    let again = gdt::parse_with(
        &out,
        &ParseOptions::default().ansi_charset(opts.ansi_charset),
    )
    .expect("a written record parses strictly");
    assert_eq!(without_length(&again), without_length(r));
    assert_eq!(again.to_bytes().expect("rewrite"), out, "writing is stable");
}

/// The fields with 8100 dropped (its value is recomputed by the writer, and it is
/// inserted when missing).
fn without_length(r: &Record) -> Vec<(u16, String)> {
    r.iter()
        .filter(|(id, _)| *id != ids::RECORD_LENGTH)
        .map(|(id, v)| (id.get(), v.to_string()))
        .collect()
}

fn read_everything(r: &Record) {
    let _ = (
        r.record_length(),
        r.charset(),
        r.version(),
        r.sender_id(),
        r.receiver_id(),
        r.exam_date(),
        r.exam_time(),
    );
    let p = r.patient();
    let _ = (
        p.number(),
        p.surname(),
        p.first_name(),
        p.birth_date(),
        p.sex(),
        p.height_cm(),
        p.weight_kg(),
        p.residence(),
        p.city(),
    );
    if let Some(req) = r.as_request() {
        let _ = (
            req.procedure(),
            req.test_ids().count(),
            req.date(),
            req.time(),
        );
    }
    if let Some(res) = r.as_result() {
        let mut n = 0;
        for t in res.tests() {
            assert_eq!(t.fields().first().map(|f| f.id), Some(ids::TEST_ID));
            let _ = (t.id(), t.value_f64(), t.normal_lower(), t.collection_date());
            n += t.fields().len();
        }
        assert!(n <= r.len());
        for f in res.files() {
            let _ = (f.archive_id(), f.format(), f.reference());
        }
        let _ = res.findings_text();
    }
    for (id, _) in r.iter() {
        let _ = gdt::field_name(id);
    }
}
