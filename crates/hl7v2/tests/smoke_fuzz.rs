//! The cargo-fuzz harness run on stable with proptest-generated inputs.

mod harness;

use proptest::prelude::*;

fn mutate(base: &[u8], edits: &[(usize, u8)]) -> Vec<u8> {
    let mut v = base.to_vec();
    for &(pos, b) in edits {
        if v.is_empty() {
            v.push(b);
        } else {
            let i = pos % (v.len() + 1);
            match b % 3 {
                0 => v.insert(i, b),
                1 if i < v.len() => v[i] = b,
                _ if i < v.len() => {
                    v.remove(i);
                }
                _ => v.push(b),
            }
        }
    }
    v
}

const SEEDS: &[&[u8]] = &[
    include_bytes!("../test_assets/orm_o01_seed.hl7"),
    include_bytes!("../test_assets/oru_r01_seed.hl7"),
    b"MSH#$%!@#A#B#C#D#2025##ADT$A01#1#P#2.5\rPID#1##1$$$X%2##N!F!x\r",
    b"MSH|^~\\&#|A|B|C|D|2025||ACK^O01^ACK|1|P|2.7\rMSA|AE|9\rERR||PID^1^3|101^x^HL70357|E\r",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
        harness::exercise(&data);
    }

    #[test]
    fn msh_prefixed(data in prop::collection::vec(any::<u8>(), 0..256), sep in prop::sample::select(&b"|^~\\&#\r\n"[..])) {
        let mut v = b"MSH|^~\\&|".to_vec();
        v.push(sep);
        v.extend_from_slice(&data);
        harness::exercise(&v);
    }

    #[test]
    fn mutated_seeds(
        seed in 0..SEEDS.len(),
        edits in prop::collection::vec((any::<usize>(), prop::sample::select(&b"|^~\\&#\r\nAZ09\"\x00\xff"[..])), 0..12)
    ) {
        harness::exercise(&mutate(SEEDS[seed], &edits));
    }
}

#[test]
fn seeds_pass() {
    for s in SEEDS {
        harness::exercise(s);
    }
}

/// Inputs the coverage-guided fuzzer (`cargo fuzz run parse`) once found; each
/// must keep passing the harness.
#[test]
fn fuzz_regressions() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test_assets/fuzz_regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        harness::exercise(&data);
        n += 1;
    }
    assert!(n > 0);
}
