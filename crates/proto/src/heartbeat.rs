//! Octavia's heartbeat envelope: `zlib.compress(json.dumps(msg), 9) || hex(HMAC-SHA256(key,
//! compressed))`. Encoding reproduces Octavia's bytes exactly (Python's `json.dumps` separators
//! and key order, zlib level 9), so a rocta amphora is indistinguishable from an Octavia one.
//! Decoding never panics: every malformed datagram is a typed error the receiver counts.

use std::io::{Read, Write};

use hmac::{Hmac, Mac};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Sha256;

/// The largest datagram the health manager reads (Octavia: 64 KiB).
pub const MAX_DATAGRAM: usize = 65_535;
/// The largest decompressed message accepted (a zlib bomb stops here).
pub const MAX_MESSAGE: u64 = 1 << 20;

/// A JSON object that keeps its members in order (Python dicts do; `json.dumps` writes them so).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ordered<T>(pub Vec<(String, T)>);

impl<T: Serialize> Serialize for Ordered<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some((k, x)) = a.next_entry()? {
                    v.push((k, x));
                }
                Ok(Ordered(v))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// Listener counters; v3 sends deltas since the previous heartbeat (`conns` is absolute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ListenerStats {
    pub tx: u64,
    pub rx: u64,
    pub conns: u64,
    pub totconns: u64,
    pub ereq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerReport {
    /// `OPEN`, `FULL`, ...
    pub status: String,
    pub stats: ListenerStats,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolReport {
    /// `UP` or `DOWN`.
    pub status: String,
    /// Member id → `UP`, `DOWN`, `DRAIN`, `MAINT`, `no check`, ...
    pub members: Ordered<String>,
}

/// A heartbeat message (version 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The amphora id.
    pub id: String,
    /// Increments per message; resets when the agent restarts.
    pub seq: u64,
    pub ver: u32,
    /// Listener id → report.
    pub listeners: Ordered<ListenerReport>,
    /// `pool_id:listener_id` → report.
    pub pools: Ordered<PoolReport>,
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("datagram of {0} bytes exceeds the limit")]
    Oversized(usize),
    #[error("datagram too short to carry a signature")]
    Truncated,
    #[error("signature does not match")]
    Forged,
    #[error("payload is not zlib data")]
    Undecodable,
    #[error("decompressed payload exceeds the limit")]
    Bomb,
    #[error("payload is not a heartbeat message")]
    BadMessage,
}

/// Python's `json.dumps` spacing: `", "` between items, `": "` after keys.
struct PyFormatter;

impl PyFormatter {
    fn separator<W: ?Sized + Write>(w: &mut W, first: bool) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
}

impl serde_json::ser::Formatter for PyFormatter {
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        Self::separator(w, first)
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        Self::separator(w, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

/// Python's `json.dumps(msg)` bytes (ASCII-escaped like Python's default `ensure_ascii`).
fn py_json(msg: &Heartbeat) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter);
    // Serializing plain data to memory cannot fail.
    let _ = msg.serialize(&mut ser);
    let text = String::from_utf8_lossy(&out);
    let mut ascii = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            ascii.push(c);
        } else {
            let mut buf = [0u16; 2];
            for u in c.encode_utf16(&mut buf) {
                ascii.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    ascii.into_bytes()
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length.
    <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

/// Encodes a heartbeat as Octavia's amphora does.
pub fn encode(msg: &Heartbeat, key: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(9));
    let _ = z.write_all(&py_json(msg));
    let mut out = z.finish().unwrap_or_default();
    let mut m = mac(key);
    m.update(&out);
    out.extend_from_slice(hex::encode(m.finalize().into_bytes()).as_bytes());
    out
}

/// Verifies and decodes a datagram. Accepts the 64-hex-character signature and, like Octavia's
/// receiver, the older raw 32-byte one.
pub fn decode(datagram: &[u8], key: &[u8]) -> Result<Heartbeat, DecodeError> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(DecodeError::Oversized(datagram.len()));
    }
    let payload = verified(datagram, key)?;
    let mut text = Vec::new();
    flate2::read::ZlibDecoder::new(payload)
        .take(MAX_MESSAGE + 1)
        .read_to_end(&mut text)
        .map_err(|_| DecodeError::Undecodable)?;
    if text.len() as u64 > MAX_MESSAGE {
        return Err(DecodeError::Bomb);
    }
    serde_json::from_slice(&text).map_err(|_| DecodeError::BadMessage)
}

fn verified<'a>(d: &'a [u8], key: &[u8]) -> Result<&'a [u8], DecodeError> {
    if d.len() > 64 {
        let (payload, sig) = d.split_at(d.len() - 64);
        if let Ok(raw) = hex::decode(sig) {
            let mut m = mac(key);
            m.update(payload);
            if m.verify_slice(&raw).is_ok() {
                return Ok(payload);
            }
        }
    }
    if d.len() > 32 {
        let (payload, sig) = d.split_at(d.len() - 32);
        let mut m = mac(key);
        m.update(payload);
        if m.verify_slice(sig).is_ok() {
            return Ok(payload);
        }
        return Err(DecodeError::Forged);
    }
    Err(DecodeError::Truncated)
}

#[cfg(test)]
mod tests;
