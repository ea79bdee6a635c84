//! Parse and write benchmarks.
//!
//! * `request_6302`: the 280-byte GDT 2.1 CP437 request fixture, parsed; parsed and
//!   read through the typed patient view.
//! * `request_6302_gdt30`: the 534-byte GDT 3.0 Latin-1 fixture, parsed.
//! * `result_6310`: a 6310 result with findings, 4 tests and a PDF reference, built
//!   and written; and the 777-byte fixture written from a parsed record.
//! * `large_6310`: a ~94 KB result with 1 400 findings lines (near the 99 999-byte
//!   limit of GDT 2.1), parsed — throughput in bytes.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gdt::{Date, FileEntry, Record, ResultRecordBuilder, Sex, TestEntry, Time, WriteOptions, ids};

const REQ21: &[u8] = include_bytes!("../test_assets/request_6302_gdt21_cp437.gdt");
const REQ30: &[u8] = include_bytes!("../test_assets/request_6302_gdt30_latin1.gdt");
const RES21: &[u8] = include_bytes!("../test_assets/result_6310_gdt21_cp437.gdt");

fn build_result() -> Result<Record, gdt::Error> {
    ResultRecordBuilder::new()
        .sender_id("EKG_DEV")
        .receiver_id("PRAX_EDV")
        .patient_number("12345")
        .surname("Müller")
        .first_name("Jürgen")
        .birth_date(Date::new(1965, 6, 24).unwrap())
        .sex(Sex::Male)
        .procedure("EKG01")
        .date(Date::new(2025, 3, 15).unwrap())
        .time(Time::new(14, 30, 5).unwrap())
        .findings(
            "Sinusrhythmus, Herzfrequenz 72/min, Indifferenztyp. PQ-, QRS- und QT-Zeit \
             normal. Keine Erregungsrückbildungsstörung.",
        )
        .comment("Vorläufiger Befund, ärztliche Freigabe folgt.")
        .file(FileEntry::pdf(
            "EKG-2025-0001",
            "Ruhe-EKG Befundbericht",
            "C:\\GDT\\Befunde\\EKG-2025-0001.pdf",
        ))
        .test(
            TestEntry::new("HF")
                .name("Herzfrequenz")
                .value("72")
                .unit("/min"),
        )
        .test(TestEntry::new("PQ").name("PQ-Zeit").value("160").unit("ms"))
        .test(
            TestEntry::new("QRS")
                .name("QRS-Dauer")
                .value("96")
                .unit("ms"),
        )
        .test(
            TestEntry::new("QTC")
                .name("QTc-Zeit")
                .value("412")
                .unit("ms"),
        )
        .signature("Dr. Weiß")
        .build()
}

fn large_result() -> Vec<u8> {
    let mut r = Record::new(gdt::RecordType::ExaminationData);
    r.push(ids::CHARSET, "2");
    for i in 0..1_400 {
        r.push(
            ids::FINDINGS,
            format!("Zeile {i:04}: Befundtext mit Umlauten äöü und ß, Länge ~55."),
        );
    }
    r.to_bytes().unwrap()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("request_6302");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse", |b| {
        b.iter(|| gdt::parse(black_box(REQ21)).map(|r| r.len()))
    });
    g.bench_function("parse_and_patient_view", |b| {
        b.iter(|| {
            let r = gdt::parse(black_box(REQ21)).ok()?;
            let p = r.patient();
            Some((
                p.surname()?.len(),
                p.birth_date().ok()??,
                p.sex().ok()??,
                r.procedure()?.len(),
            ))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("request_6302_gdt30");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse", |b| {
        b.iter(|| gdt::parse(black_box(REQ30)).map(|r| r.len()))
    });
    g.finish();

    let mut g = c.benchmark_group("result_6310");
    g.throughput(Throughput::Elements(1));
    let opts = WriteOptions::default();
    g.bench_function("build_and_write", |b| {
        b.iter(|| build_result().and_then(|r| gdt::write(black_box(&r), &opts)))
    });
    let parsed = gdt::parse(RES21).unwrap();
    let mut buf = Vec::with_capacity(1024);
    g.bench_function("write_fixture", |b| {
        b.iter(|| {
            buf.clear();
            gdt::write_into(black_box(&parsed), &opts, &mut buf).map(|()| buf.len())
        })
    });
    g.finish();

    let large = large_result();
    let mut g = c.benchmark_group("large_6310");
    g.throughput(Throughput::Bytes(large.len() as u64));
    g.bench_function("parse", |b| {
        b.iter(|| gdt::parse(black_box(&large)).map(|r| r.len()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
