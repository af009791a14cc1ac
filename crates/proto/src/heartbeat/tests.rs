use proptest::prelude::*;

use super::*;

const KEY: &[u8] = b"insecure-fixture-key";
/// Copies of `shared/reference/heartbeats` (made by Octavia's own encoder).
const FIXTURES: &str = "fixtures";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/{FIXTURES}/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn fixture_message(name: &str) -> Heartbeat {
    let f: serde_json::Value = serde_json::from_slice(&fixture("fixtures.json")).unwrap();
    serde_json::from_value(f["fixtures"][name]["message"].clone()).unwrap()
}

/// Octavia's own encoder produced these bytes: decoding them and re-encoding the same message
/// pins the wire format byte for byte.
#[test]
fn octavia_fixtures_decode_and_reencode_identically() {
    for name in ["v3_empty", "v3_one_listener"] {
        let bytes = fixture(&format!("{name}.bin"));
        let msg = decode(&bytes, KEY).unwrap();
        assert_eq!(msg, fixture_message(name));
        assert_eq!(
            encode(&msg, KEY),
            bytes,
            "{name}: re-encoding differs from Octavia's bytes"
        );
    }
}

#[test]
fn forged_truncated_and_garbage_datagrams_are_refused() {
    let good = fixture("v3_one_listener.bin");
    assert_eq!(decode(&good, b"other key"), Err(DecodeError::Forged));
    let mut flipped = good.clone();
    flipped[10] ^= 1;
    assert_eq!(decode(&flipped, KEY), Err(DecodeError::Forged));
    assert_eq!(decode(&good[..20], KEY), Err(DecodeError::Truncated));
    assert_eq!(decode(&[], KEY), Err(DecodeError::Truncated));
    assert!(matches!(
        decode(&vec![0u8; 70_000], KEY),
        Err(DecodeError::Oversized(_))
    ));
    // Signed but not zlib, and zlib but not a heartbeat.
    let sign = |payload: &[u8]| {
        use hmac::Mac;
        let mut m = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(KEY).unwrap();
        m.update(payload);
        let mut d = payload.to_vec();
        d.extend_from_slice(hex::encode(m.finalize().into_bytes()).as_bytes());
        d
    };
    assert_eq!(
        decode(&sign(b"not zlib at all"), KEY),
        Err(DecodeError::Undecodable)
    );
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(9));
    std::io::Write::write_all(&mut z, b"{\"hello\": 1}").unwrap();
    assert_eq!(
        decode(&sign(&z.finish().unwrap()), KEY),
        Err(DecodeError::BadMessage)
    );
    // A zlib bomb stops at the limit.
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(9));
    std::io::Write::write_all(&mut z, &vec![b' '; 4 << 20]).unwrap();
    assert_eq!(
        decode(&sign(&z.finish().unwrap()), KEY),
        Err(DecodeError::Bomb)
    );
}

fn arb_id() -> impl Strategy<Value = String> {
    "[a-f0-9-]{1,36}|[\\PC]{0,8}"
}

fn arb_heartbeat() -> impl Strategy<Value = Heartbeat> {
    let listener = (arb_id(), "[A-Z]{2,6}", any::<[u32; 5]>()).prop_map(|(id, status, s)| {
        (
            id,
            ListenerReport {
                status,
                stats: ListenerStats {
                    tx: s[0] as u64,
                    rx: s[1] as u64,
                    conns: s[2] as u64,
                    totconns: s[3] as u64,
                    ereq: s[4] as u64,
                },
            },
        )
    });
    let pool = (
        arb_id(),
        "UP|DOWN",
        prop::collection::vec((arb_id(), "UP|DOWN|DRAIN|MAINT|no check"), 0..4),
    )
        .prop_map(|(id, status, m)| {
            (
                id,
                PoolReport {
                    status,
                    members: Ordered(m),
                },
            )
        });
    (
        arb_id(),
        any::<u64>(),
        prop::collection::vec(listener, 0..4),
        prop::collection::vec(pool, 0..4),
    )
        .prop_map(|(id, seq, l, p)| Heartbeat {
            id,
            seq,
            ver: 3,
            listeners: Ordered(l),
            pools: Ordered(p),
        })
}

proptest! {
    #[test]
    fn round_trips(msg in arb_heartbeat(), key in prop::collection::vec(any::<u8>(), 0..40)) {
        let bytes = encode(&msg, &key);
        prop_assert_eq!(decode(&bytes, &key).unwrap(), msg);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode(&data, KEY);
    }
}
