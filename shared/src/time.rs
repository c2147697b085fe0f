//! Timestamps: `chrono` in the core and on the wire (RFC 3339, milliseconds, `Z`), BSON dates
//! in MongoDB. MongoDB keeps milliseconds, so `now()` is truncated to them: a value read
//! back equals the value written.

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serializer;

pub type Timestamp = DateTime<Utc>;

/// The current time at MongoDB's precision.
pub fn now() -> Timestamp {
    Utc::now().trunc_subsecs(3)
}

pub fn to_bson(t: Timestamp) -> bson::DateTime {
    bson::DateTime::from_chrono(t)
}

pub fn from_bson(t: bson::DateTime) -> Timestamp {
    t.to_chrono()
}

pub fn format(t: &Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `#[serde(serialize_with = "time::rfc3339")]`
pub fn rfc3339<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(t))
}

/// `#[serde(serialize_with = "time::rfc3339_opt")]`
pub fn rfc3339_opt<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&format(t)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bson_round_trip_is_exact() {
        let t = now();
        assert_eq!(from_bson(to_bson(t)), t);
        assert!(format(&t).ends_with('Z'));
        assert_eq!(format(&t).len(), "2026-01-01T00:00:00.000Z".len());
    }
}
