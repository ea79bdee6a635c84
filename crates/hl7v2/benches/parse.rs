//! Parse + field access benchmarks.
//!
//! * `orm_1k`: a realistic ~1 KB ORM^O01, parsed and 10 fields read through string paths
//!   (what the engine does) and through pre-parsed paths.
//! * `oru_2mb`: an ORU^R01 whose OBX-5 carries a ~2 MB Base64 PDF (generated here,
//!   deterministically), parsed and the Base64 slice located.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hl7v2::{Message, Path};

fn orm_1k() -> Vec<u8> {
    let segs = [
        "MSH|^~\\&|HIS|HOSPITAL_A|MEDRELAY|CARDIOLOGY|20250315120000+0100||ORM^O01^ORM_O01|MSG2025031512000001|P|2.5|||AL|NE||UNICODE UTF-8",
        "PID|1||1234567890^^^HIS^MR~99887766^^^NHS^NH||GARCIA^PEDRO^MIGUEL^^DR^^L||19751022|M|||C/ MAYOR 1^PISO 2^MADRID^^28001^ES^H||^PRN^PH^^34^91^5551234~^NET^Internet^pedro.garcia@example.org|||M||ACC-7788991|",
        "PD1|||CENTRO DE SALUD NORTE^^12345|98765^MARTIN^LUIS^^^DR",
        "PV1|1|O|CARDIO^101^A^HOSPITAL_A||||12345^LOPEZ^ANA^^^DR|67890^RUIZ^JUAN^^^DR||CAR||||1|||12345^LOPEZ^ANA^^^DR|OP|VN-2025-000123|||||||||||||||||||||||||20250315113000",
        "IN1|1|PLAN01^GENERAL PLAN|INS001^ASEGURADORA SALUD|ASEGURADORA SALUD SA^^^^^ES|||||GRP-5544",
        "ORC|NW|ORD-2025-001^HIS|FIL-2025-777^MEDRELAY||SC||1^^^20250315130000^^R||20250315120000|7788^ADMIN^CLERK|||12345^LOPEZ^ANA^^^DR|CARDIO^101^A",
        "OBR|1|ORD-2025-001^HIS|FIL-2025-777^MEDRELAY|ECG12^12-lead electrocardiogram^L|R|20250315120000|20250315130000|||||||||12345^LOPEZ^ANA^^^DR||ACC-2025-555|||||EC|||1^^^20250315130000^^R",
        "NTE|1|L|Patient has a pacemaker; please note lead placement.",
        "DG1|1||I48.91^Atrial fibrillation^I10|||W",
        "OBX|1|NM|8867-4^Heart rate^LN||72|/min^beats per minute^UCUM|60-100|N|||F",
    ];
    let mut v = segs.join("\r").into_bytes();
    v.push(b'\r');
    v
}

/// xorshift PRNG: deterministic "PDF" bytes without a dependency.
fn pseudo_pdf(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut out = b"%PDF-1.4\n".to_vec();
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn base64(data: &[u8]) -> Vec<u8> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63]);
        out.push(T[(n >> 12) as usize & 63]);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63]
        } else {
            b'='
        });
    }
    out
}

fn oru_2mb() -> Vec<u8> {
    let pdf = base64(&pseudo_pdf(1_536_000));
    let mut v = b"MSH|^~\\&|MEDRELAY|CLINIC|HIS|HOSPITAL_A|20250315145530||ORU^R01^ORU_R01|RPT001|P|2.5\r\
PID|1||1234567890^^^HIS^MR||GARCIA^PEDRO^M||19751022|M\r\
OBR|1|ORD-2025-001|FIL-777|ECG12^12-lead ECG^L|||20250315130000||||||||12345^LOPEZ^ANA||||||20250315145530||EC|F\r\
OBX|1|NM|8867-4^Heart rate^LN||72|/min|60-100|N|||F\r\
OBX|2|ED|PDF^Report^L||^application^pdf^Base64^"
        .to_vec();
    v.extend_from_slice(&pdf);
    v.extend_from_slice(b"||||||F\r");
    v
}

const ORM_PATHS: [&str; 10] = [
    "MSH-9.1", "MSH-9.2", "MSH-10", "PID-3.1", "PID-5.1", "PID-5.2", "PID-7", "PV1-19", "ORC-1",
    "OBR-4.1",
];

fn bench(c: &mut Criterion) {
    let orm = orm_1k();
    let mut g = c.benchmark_group("orm_1k");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_only", |b| {
        b.iter(|| Message::parse(black_box(&orm)).map(|m| m.segment_count()))
    });
    g.bench_function("parse_and_10_fields_str_paths", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(&orm)).ok()?;
            let mut n = 0;
            for p in ORM_PATHS {
                n += m.get(p)?.as_bytes().len();
            }
            Some(n)
        })
    });
    let paths: Vec<Path> = ORM_PATHS.iter().map(|p| p.parse().unwrap()).collect();
    g.bench_function("parse_and_10_fields_preparsed", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(&orm)).ok()?;
            let mut n = 0;
            for p in &paths {
                n += m.get_path(p)?.as_bytes().len();
            }
            Some(n)
        })
    });
    g.bench_function("parse_and_header", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(&orm)).ok()?;
            let h = m.header();
            Some((h.message_type_string(), h.control_id().map(|c| c.len())))
        })
    });
    g.finish();

    let oru = oru_2mb();
    let mut g = c.benchmark_group("oru_2mb");
    g.throughput(Throughput::Bytes(oru.len() as u64));
    g.sample_size(50);
    g.bench_function("parse_and_obx5_pdf", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(&oru)).ok()?;
            let pdf = m.get("OBX(2)-5.5")?;
            Some((m.get("PID-3.1")?.as_bytes().len(), pdf.as_bytes().len()))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
