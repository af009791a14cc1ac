//! Timestamps as Octavia renders them: `2026-11-25T04:14:30` (UTC, whole seconds, no zone).

use chrono::{NaiveDateTime, Utc};

/// A point in time, UTC, kept with microseconds (ordering) and rendered in whole seconds.
pub type Timestamp = NaiveDateTime;

/// Octavia's wire format.
pub const FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// Now, UTC.
pub fn now() -> Timestamp {
    Utc::now().naive_utc()
}

/// Milliseconds since the Unix epoch (leases, heartbeats, intents).
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Render in Octavia's format.
pub fn render(t: &Timestamp) -> String {
    t.format(FORMAT).to_string()
}

/// Serde helper for `Timestamp` fields: renders whole seconds, parses with or without a fraction.
pub mod serde_ts {
    use super::{Timestamp, FORMAT};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&t.format(FORMAT))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }

    pub(crate) fn parse(s: &str) -> Result<Timestamp, chrono::ParseError> {
        Timestamp::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
    }
}

/// Serde helper for `Option<Timestamp>` fields.
pub mod serde_ts_opt {
    use super::{Timestamp, FORMAT};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.collect_str(&t.format(FORMAT)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        let s = <Option<std::borrow::Cow<'de, str>>>::deserialize(d)?;
        s.map(|s| super::serde_ts::parse(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_whole_seconds_without_zone() {
        let t = serde_ts::parse("2026-11-25T04:14:30.123456").unwrap();
        assert_eq!(render(&t), "2026-11-25T04:14:30");
    }
}
