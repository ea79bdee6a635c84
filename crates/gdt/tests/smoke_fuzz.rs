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
    include_bytes!("../test_assets/request_6302_gdt21_cp437.gdt"),
    include_bytes!("../test_assets/request_6302_gdt30_latin1.gdt"),
    include_bytes!("../test_assets/result_6310_gdt21_cp437.gdt"),
    b"01380006302\r\n01092061\r\n0153101M}ller\r\n",
    b"01380006301\n0103000x\n",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
        harness::exercise(&data);
    }

    /// Starts with a valid 8000 line so that the rest gets past the first checks.
    #[test]
    fn record_prefixed(data in prop::collection::vec(
        prop::sample::select(&b"0123456789\r\n8000\x81\xfc\xff \x1a"[..]), 0..256)
    ) {
        let mut v = b"01380006310\r\n".to_vec();
        v.extend_from_slice(&data);
        harness::exercise(&v);
    }

    #[test]
    fn mutated_seeds(
        seed in 0..SEEDS.len(),
        edits in prop::collection::vec((any::<usize>(), prop::sample::select(&b"0123456789\r\n\x00\x81\xfc\xffAZ ~[|"[..])), 0..12)
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

/// Inputs the coverage-guided fuzzer (`cargo fuzz run parse`) found or that were
/// written to reach corners of the parser; each must keep passing the harness.
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
