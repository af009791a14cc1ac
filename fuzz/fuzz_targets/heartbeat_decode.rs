//! Any datagram through Octavia's heartbeat decoder: a typed refusal or a heartbeat, never a
//! panic; a decoded heartbeat re-encodes to a datagram that decodes to the same message.
//!
//! The first byte picks how far the input reaches: 0, the raw datagram (mostly refused as
//! forged); 1, the input as the compressed payload with a valid signature appended (the zlib
//! stage and its bomb guard); otherwise, the input as the message text, compressed and signed
//! (the JSON stage).
#![no_main]

use std::io::Write;

use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use rocta_proto::heartbeat::{decode, encode};
use sha2::Sha256;

// The key of the fixtures made by Octavia's encoder (the seed corpus holds them).
const KEY: &[u8] = b"insecure-fixture-key";

fn signed(payload: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(KEY).expect("any key length");
    m.update(payload);
    let mut out = payload.to_vec();
    out.extend_from_slice(hex::encode(m.finalize().into_bytes()).as_bytes());
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let datagram = match mode {
        0 => rest.to_vec(),
        1 => signed(rest),
        _ => {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            z.write_all(rest).expect("in memory");
            signed(&z.finish().expect("in memory"))
        }
    };
    if let Ok(hb) = decode(&datagram, KEY) {
        let again = decode(&encode(&hb, KEY), KEY).expect("a re-encoded heartbeat decodes");
        assert_eq!(again, hb);
    }
});
