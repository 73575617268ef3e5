//! Every case of the hostile-tick corpus gets exactly its expected outcome from the decoder.

use tickwatch_core::Tick;
use tickwatch_core::testing::hostile::{self, Expect};

const CORPUS: &str = include_str!("../../../testdata/hostile-ticks.json");

#[test]
fn every_hostile_tick_gets_its_expected_outcome() {
    let cases = hostile::parse(CORPUS).expect("the corpus parses");
    assert!(
        cases.len() >= 40,
        "the corpus covers at least 40 kinds of hostile input"
    );
    for case in &cases {
        match (&case.expect, Tick::decode(&case.body)) {
            (Expect::Accept, Ok(_)) => {}
            (Expect::Reject { code, contains }, Err(error)) => {
                assert_eq!(error.code(), code, "{}: {error}", case.name);
                assert!(
                    error.to_string().contains(contains.as_str()),
                    "{}: {error:?} should contain {contains:?}",
                    case.name
                );
                assert!(
                    error.to_string().len() < 400,
                    "{}: messages stay short",
                    case.name
                );
            }
            (expect, got) => panic!("{}: expected {expect:?}, got {got:?}", case.name),
        }
    }
}

#[test]
fn the_corpus_has_bodies_for_each_path() {
    let cases = hostile::parse(CORPUS).expect("the corpus parses");
    assert!(
        cases.iter().filter(|c| c.fits_sqs()).count() >= 40,
        "enough cases can travel through SQS"
    );
    assert!(
        cases.iter().filter(|c| c.fits_one_line()).count() >= 40,
        "enough cases fit the NDJSON reader"
    );
    assert!(
        cases.iter().any(|c| !c.fits_sqs()),
        "some bytes only a file can carry"
    );
}
