//! Events: their canonical form, hash and signature.
//!
//! The canonical form of an event is `serde_json::to_vec` of the [`Event`] with `signature`
//! set to `None` (so the key is left out). The struct's field order is fixed and every map in
//! it is a struct, so the bytes are the same wherever this code runs on the same event; a
//! receiver parses the JSON it got and serialises it again, which gives the same bytes (floats
//! and times round-trip exactly through serde_json and chrono). Fields unknown to the software
//! reading the event are not part of what it re-serialises: a new field in the schema comes
//! with a new version of this software at both ends.

use anpr_types::Event;

use crate::{SignatureError, SigningKey, VerifyingKey, sha256_hex, sign_hex, verify_hex};

/// The bytes hashed and signed: the event as JSON without its signature.
#[must_use]
pub fn canonical_bytes(event: &Event) -> Vec<u8> {
    if event.signature.is_none() {
        return serde_json::to_vec(event).expect("events always serialise");
    }
    let unsigned = Event {
        signature: None,
        ..event.clone()
    };
    serde_json::to_vec(&unsigned).expect("events always serialise")
}

/// The hash of an event: lower-case hex sha256 of its canonical bytes.
#[must_use]
pub fn event_hash(event: &Event) -> String {
    sha256_hex(&canonical_bytes(event))
}

/// Sets the event's signature (over its canonical bytes, `prev_hash` included) and returns
/// its hash.
pub fn sign_event(event: &mut Event, key: &SigningKey) -> String {
    event.signature = None;
    let bytes = serde_json::to_vec(&*event).expect("events always serialise");
    event.signature = Some(sign_hex(key, &bytes));
    sha256_hex(&bytes)
}

/// Checks the event's signature against the device's key.
pub fn verify_event(event: &Event, key: &VerifyingKey) -> Result<(), SignatureError> {
    verify_hex(key, &canonical_bytes(event), event.signature.as_deref())
}

#[cfg(test)]
pub(crate) mod tests {
    use anpr_types::{
        ClockInfo, DeviceInfo, EVENT_SCHEMA, EventKind, EventPlate, EventVehicle, EvidenceRef,
        FrameRef, PlateStatus, VehicleClass,
    };

    use super::*;

    /// A passage with one evidence image.
    pub(crate) fn passage(seq: u64) -> Event {
        Event {
            schema: EVENT_SCHEMA.into(),
            event_id: uuid::Uuid::now_v7(),
            seq,
            device: DeviceInfo {
                inventory: "KZ-T".into(),
                profile: "stationary".into(),
                site: "s".into(),
            },
            camera: "cam1".into(),
            kind: EventKind::Passage,
            captured_at: chrono::Utc::now(),
            clock: ClockInfo {
                source: "system".into(),
                synced: false,
                ..ClockInfo::default()
            },
            position: Some(anpr_types::Position::fixed(51.128_2, 71.430_4)),
            vehicle: EventVehicle {
                class: VehicleClass::Car,
                confidence: 0.912_345,
                bbox: Some([1, 2, 3, 4]),
                direction: Some("towards".into()),
                lane: None,
            },
            plate: EventPlate {
                text: "123ABC01".into(),
                confidence: 0.97,
                detection_confidence: 0.81,
                bbox: [1, 2, 3, 4],
                country: Some("KZ".into()),
                plate_type: None,
                region: None,
                status: PlateStatus::Read,
                low_confidence: false,
            },
            frame: FrameRef {
                index: seq,
                width: 1280,
                height: 720,
            },
            evidence: vec![EvidenceRef {
                kind: "overview".into(),
                sha256: sha256_hex(&[seq as u8; 10]),
                size: 10,
                content_type: "image/jpeg".into(),
            }],
            track: None,
            violation: None,
            gap: None,
            custody: None,
            prev_hash: Some(crate::ZERO_HASH.into()),
            signature: None,
        }
    }

    #[test]
    fn a_signed_event_verifies_and_survives_a_json_round_trip() {
        let key = SigningKey::generate(&mut rand_core::OsRng);
        let mut e = passage(1);
        let hash = sign_event(&mut e, &key);
        assert_eq!(hash, event_hash(&e), "the hash leaves the signature out");
        verify_event(&e, &key.verifying_key()).unwrap();
        // As a receiver sees it: parsed from the JSON the device sent, inside a delivery.
        let wire = serde_json::to_string(&anpr_types::Delivery {
            event: e.clone(),
            sent_at: chrono::Utc::now(),
            delayed: true,
        })
        .unwrap();
        let got: anpr_types::Delivery = serde_json::from_str(&wire).unwrap();
        assert_eq!(event_hash(&got.event), hash);
        verify_event(&got.event, &key.verifying_key()).unwrap();
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// Any float the device writes parses back (inside a delivery, as a receiver reads
        /// it) to the same value: the receiver computes the same hash and the signature holds.
        /// (serde_json needs its `float_roundtrip` feature for this.)
        #[test]
        fn any_floats_give_the_same_hash_after_the_trip_to_a_receiver(
            lat in proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO,
            lon in -180.0f64..180.0,
            confidence in proptest::num::f32::NORMAL | proptest::num::f32::SUBNORMAL,
            plate in 0.0f32..1.0,
        ) {
            let key = SigningKey::from_bytes(&[3; 32]);
            let mut e = passage(7);
            e.position = Some(anpr_types::Position::fixed(lat, lon));
            e.vehicle.confidence = confidence;
            e.plate.confidence = plate;
            let hash = sign_event(&mut e, &key);
            let wire = serde_json::to_vec(&anpr_types::Delivery {
                event: e,
                sent_at: chrono::Utc::now(),
                delayed: false,
            })
            .unwrap();
            let got: anpr_types::Delivery = serde_json::from_slice(&wire).unwrap();
            proptest::prop_assert_eq!(event_hash(&got.event), hash);
            proptest::prop_assert!(verify_event(&got.event, &key.verifying_key()).is_ok());
        }
    }

    #[test]
    fn a_changed_field_or_a_flipped_signature_byte_fails() {
        let key = SigningKey::generate(&mut rand_core::OsRng);
        let vk = key.verifying_key();
        let mut e = passage(1);
        sign_event(&mut e, &key);
        let mut edited = e.clone();
        edited.plate.text = "777KZA02".into();
        assert_eq!(verify_event(&edited, &vk), Err(SignatureError::Invalid));
        let mut image = e.clone();
        image.evidence[0].sha256 = sha256_hex(b"another image");
        assert_eq!(verify_event(&image, &vk), Err(SignatureError::Invalid));
        let mut relinked = e.clone();
        relinked.prev_hash = Some(sha256_hex(b"x"));
        assert_eq!(verify_event(&relinked, &vk), Err(SignatureError::Invalid));
        let mut flipped = e.clone();
        let mut sig = hex::decode(flipped.signature.as_ref().unwrap()).unwrap();
        sig[7] ^= 0x01;
        flipped.signature = Some(hex::encode(sig));
        assert_eq!(verify_event(&flipped, &vk), Err(SignatureError::Invalid));
        let other = SigningKey::generate(&mut rand_core::OsRng).verifying_key();
        assert_eq!(verify_event(&e, &other), Err(SignatureError::Invalid));
        let mut none = e.clone();
        none.signature = None;
        assert_eq!(verify_event(&none, &vk), Err(SignatureError::Missing));
        none.signature = Some("zz".into());
        assert_eq!(verify_event(&none, &vk), Err(SignatureError::Malformed));
    }
}
