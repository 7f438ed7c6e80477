//! Property tests of the acknowledgement payloads the device reads on its `ack` topic
//! (`serde_json::from_slice::<Ack>` in `session.rs`): any bytes are an ack or an error, never a
//! panic; an ack the receiver writes parses at the device to the same ack; an ack whose JSON
//! has one field replaced by any value is refused or parsed, and what parses round-trips. The
//! same parser has a cargo-fuzz target (`fuzz/fuzz_targets/ack.rs`); these run a bounded
//! number of cases in every `cargo test`.

use anpr_types::Ack;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use serde_json::{Value, json};

/// `cases` cases from a fixed seed unless `PROPTEST_RNG_SEED` gives one, so that a run in CI
/// is repeatable.
fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::with_cases(cases);
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0xAC_4AC4);
    }
    config
}

/// Parses `bytes` as the device does and checks that what parses round-trips.
fn parse(bytes: &[u8]) -> Result<Option<Ack>, TestCaseError> {
    let Ok(ack) = serde_json::from_slice::<Ack>(bytes) else {
        return Ok(None);
    };
    let again = serde_json::to_vec(&ack).expect("an ack serialises");
    prop_assert_eq!(
        serde_json::from_slice::<Ack>(&again).expect("parses again"),
        ack.clone()
    );
    Ok(Some(ack))
}

fn ack_json(id: u128, seq: u64, evidence: Option<&str>, sha256: &str) -> Value {
    json!({
        "event_id": uuid::Uuid::from_u128(id),
        "seq": seq,
        "evidence": evidence,
        "inventory": "KZ-ICD-0001",
        "sha256": sha256,
        "signature": "00".repeat(64),
    })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_bytes_on_the_ack_topic_are_an_ack_or_an_error(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        parse(&bytes)?;
    }

    #[test]
    fn an_ack_as_the_receiver_writes_it_parses_to_the_same_ack(
        id in any::<u128>(),
        seq in any::<u64>(),
        evidence in proptest::option::of("[0-9a-f]{64}"),
        sha256 in "[0-9a-f]{64}",
    ) {
        let v = ack_json(id, seq, evidence.as_deref(), &sha256);
        let ack = parse(&serde_json::to_vec(&v).expect("json"))?.expect("an ack parses");
        prop_assert_eq!(ack.seq, seq);
        prop_assert_eq!(ack.event_id.as_u128(), id);
        prop_assert_eq!(ack.evidence, evidence);
    }

    #[test]
    fn an_ack_with_one_field_replaced_by_any_json_is_parsed_or_refused(
        field in prop_oneof![
            Just("event_id"), Just("seq"), Just("evidence"), Just("inventory"),
            Just("sha256"), Just("signature"), Just("extra"),
        ],
        value in prop_oneof![
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|n| json!(n)),
            "\\PC{0,40}".prop_map(|s| json!(s)),
            Just(json!(null)),
            Just(json!([])),
            Just(json!({"seq": 1})),
        ],
    ) {
        let mut v = ack_json(7, 5, None, &"ab".repeat(32));
        v[field] = value;
        parse(&serde_json::to_vec(&v).expect("json"))?;
    }
}
