//! Domain newtypes, parsed once at the edge.
//!
//! Every id and user-supplied value that crosses into the core is one of these types; core
//! functions never take raw `&str` ids. Each type has a private field and a `parse` that
//! returns a typed [`InputError`], so a bad value becomes a 400 (or a `system` error on a
//! socket) before it reaches the database.

use std::fmt;

use bson::oid::ObjectId;
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::InputError;

/// A mobile number in E.164 form (`+15551234567`), validated with the `phonenumber` crate.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Mobile(String);

impl Mobile {
    /// Accepts every number written in international form (`+`, then digits; spaces, dots,
    /// dashes and parentheses between them are ignored) that is *possible*: its country
    /// calling code exists and its national number has a length that country uses (the
    /// tables of `phonelib`). Whether it can get a text message is the SMS provider's to
    /// say. Returns it as E.164.
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let raw = raw.trim();
        let rest = raw.strip_prefix('+').ok_or(InputError::InvalidMobile)?;
        if raw.len() > 32 {
            return Err(InputError::InvalidMobile);
        }
        let mut digits = String::with_capacity(15);
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(InputError::InvalidMobile),
            }
        }
        if digits.len() > 15 {
            return Err(InputError::InvalidMobile);
        }
        // Calling codes are prefix-free: the first one that exists is the number's.
        let possible = (1..=3).filter(|n| *n < digits.len()).find_map(|n| {
            let code: u32 = digits[..n].parse().ok()?;
            let countries = phonelib::countries_by_calling_code(code);
            (!countries.is_empty()).then(|| {
                let national = digits.len() - n;
                countries
                    .iter()
                    .any(|c| c.phone_lengths.iter().any(|&l| usize::from(l) == national))
            })
        });
        match possible {
            Some(true) => Ok(Self(format!("+{digits}"))),
            _ => Err(InputError::InvalidMobile),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last four digits, used for the default display name.
    pub fn last_digits(&self) -> &str {
        let start = self.0.len().saturating_sub(4);
        &self.0[start..]
    }
}

macro_rules! object_id_newtype {
    ($(#[$doc:meta])* $name:ident, $err:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(ObjectId);

        impl $name {
            /// A fresh id (ObjectId: time-ordered, unique across processes).
            pub fn new() -> Self {
                Self(ObjectId::new())
            }

            /// Parses the 24-hex-digit form clients see.
            pub fn parse(raw: &str) -> Result<Self, InputError> {
                ObjectId::parse_str(raw.trim()).map(Self).map_err(|_| $err)
            }

            pub fn from_object_id(id: ObjectId) -> Self {
                Self(id)
            }

            pub fn object_id(&self) -> ObjectId {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0.to_hex())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

object_id_newtype!(
    /// A user's stable identity. Never changes once the first verify of a mobile created it.
    UserId,
    InputError::InvalidUserId
);
object_id_newtype!(
    /// A stored message.
    MessageId,
    InputError::InvalidMessageId
);

/// A connection id: an API Gateway WebSocket connection id (`L0SM9cOFvHcCIhw=`), what
/// @connections addresses, or a long-polling session's (`poll.` + its Engine.IO sid: no
/// API Gateway id has a `.`), whose packets are queued in MongoDB for its next `GET`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ConnectionId(String);

impl TryFrom<String> for ConnectionId {
    type Error = InputError;
    fn try_from(raw: String) -> Result<Self, InputError> {
        Self::parse(&raw)
    }
}

impl From<ConnectionId> for String {
    fn from(id: ConnectionId) -> String {
        id.0
    }
}

impl ConnectionId {
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let ok = !raw.is_empty()
            && raw.len() <= 128
            && raw.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'=' | b'-' | b'_' | b'+' | b'/' | b'.')
            });
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InputError::InvalidConnectionId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The connection id of the long-polling session `sid`, if `sid` can be one.
    pub fn polling(sid: &str) -> Result<Self, InputError> {
        if sid.is_empty() || sid.contains('.') {
            return Err(InputError::InvalidConnectionId);
        }
        Self::parse(&format!("{POLLING_PREFIX}{sid}"))
    }

    /// Whether this is a long-polling session (its packets are queued, not posted).
    pub fn is_polling(&self) -> bool {
        self.0.starts_with(POLLING_PREFIX)
    }
}

const POLLING_PREFIX: &str = "poll.";

/// How many sweep slots connections are spread over (see [`SlotRange`]).
pub const SLOTS: u32 = 4096;

impl ConnectionId {
    /// The connection's sweep slot: a hash of its id, stable across processes and releases.
    pub fn slot(&self) -> u32 {
        let h = Sha256::digest(self.0.as_bytes());
        ((u32::from(h[0]) << 8) | u32::from(h[1])) % SLOTS
    }
}

/// A range of sweep slots, `lo..hi` within `0..SLOTS`: the share of connections one sweep
/// invocation handles (each connection record carries its [`ConnectionId::slot`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawSlots")]
pub struct SlotRange {
    lo: u32,
    hi: u32,
}

#[derive(Deserialize)]
struct RawSlots {
    lo: u32,
    hi: u32,
}

impl TryFrom<RawSlots> for SlotRange {
    type Error = InputError;
    fn try_from(r: RawSlots) -> Result<Self, InputError> {
        Self::new(r.lo, r.hi)
    }
}

impl SlotRange {
    /// Every slot.
    pub const ALL: SlotRange = SlotRange { lo: 0, hi: SLOTS };

    pub fn new(lo: u32, hi: u32) -> Result<Self, InputError> {
        if lo < hi && hi <= SLOTS {
            Ok(Self { lo, hi })
        } else {
            Err(InputError::InvalidBody(format!(
                "slot range {lo}..{hi} is not within 0..{SLOTS}"
            )))
        }
    }

    pub fn lo(&self) -> u32 {
        self.lo
    }

    pub fn hi(&self) -> u32 {
        self.hi
    }

    pub fn is_all(&self) -> bool {
        *self == Self::ALL
    }

    pub fn contains(&self, slot: u32) -> bool {
        (self.lo..self.hi).contains(&slot)
    }

    /// `n` contiguous ranges covering this one, as even as slots allow (fewer when there are
    /// fewer slots than `n`).
    pub fn split(&self, n: u32) -> Vec<SlotRange> {
        let width = self.hi - self.lo;
        let n = n.clamp(1, width);
        (0..n)
            .map(|i| SlotRange {
                lo: self.lo + width * i / n,
                hi: self.lo + width * (i + 1) / n,
            })
            .collect()
    }
}

impl fmt::Display for SlotRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.lo, self.hi)
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Message text: 1 to 4000 characters, not only white space.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageText(String);

impl MessageText {
    pub const MAX_CHARS: usize = 4000;

    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let chars = raw.chars().count();
        if raw.trim().is_empty() || chars > Self::MAX_CHARS {
            return Err(InputError::InvalidMessageText);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A client-chosen id for a message, making `send_message` idempotent per sender.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientMsgId(String);

impl ClientMsgId {
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        if raw.is_empty() || raw.len() > 128 || raw.chars().any(char::is_control) {
            return Err(InputError::InvalidClientId);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A display name: 1 to 64 characters after trimming.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS || trimmed.chars().any(char::is_control) {
            return Err(InputError::InvalidDisplayName);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The name a new user starts with.
    pub fn default_for(mobile: &Mobile) -> Self {
        Self(format!("User {}", mobile.last_digits()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A one-time password: exactly six ASCII digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Otp(String);

impl Otp {
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let raw = raw.trim();
        if raw.len() == 6 && raw.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InputError::InvalidOtp)
        }
    }

    /// Six digits from `rand`'s thread-local CSPRNG (ChaCha, seeded by the OS).
    pub fn generate() -> Self {
        let n: u32 = rand::rng().random_range(0..1_000_000);
        Self(format!("{n:06}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What is stored: an HMAC-SHA256 under the server's key, bound to the mobile, so a
    /// database dump alone does not reveal a live code (a million candidates are nothing to
    /// try against a plain hash) and equal codes for different numbers never share a hash.
    pub fn hash(&self, mobile: &Mobile, key: &HashKey) -> String {
        key.mac(&[b"otp:", mobile.as_str().as_bytes(), b":", self.0.as_bytes()])
    }
}

impl fmt::Debug for Otp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Otp(******)")
    }
}

/// A session token: 256 random bits, URL-safe base64 without padding (43 characters).
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let raw = raw.trim();
        let ok = raw.len() == 43
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InputError::InvalidToken)
        }
    }

    pub fn generate() -> Self {
        use base64::Engine as _;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The token as the client sees it once, at verify.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What `sessions` stores as `_id`: an HMAC-SHA256 under the server's key.
    pub fn hash(&self, key: &HashKey) -> String {
        key.mac(&[b"token:", self.0.as_bytes()])
    }

    /// What `refresh_tokens` stores as `_id` for a refresh token (a separate domain from
    /// access tokens, so one can never be looked up as the other).
    pub fn refresh_hash(&self, key: &HashKey) -> String {
        key.mac(&[b"refresh:", self.0.as_bytes()])
    }

    /// The unkeyed SHA-256 sessions were stored under before the key existed; a session
    /// found under it is moved to [`Token::hash`] on first use.
    pub fn legacy_hash(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"token:");
        hasher.update(self.0.as_bytes());
        hex::encode(hasher.finalize())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

/// The server's secret for the hashes of OTPs and tokens at rest (`HASH_SECRET`).
#[derive(Clone)]
pub struct HashKey {
    secret: Vec<u8>,
    mac: hmac::Hmac<Sha256>,
}

impl PartialEq for HashKey {
    fn eq(&self, other: &Self) -> bool {
        self.secret == other.secret
    }
}

impl HashKey {
    /// At least 32 bytes.
    pub fn new(secret: &[u8]) -> Option<Self> {
        use hmac::KeyInit;
        if secret.len() < 32 {
            return None;
        }
        let mac = hmac::Hmac::<Sha256>::new_from_slice(secret).ok()?;
        Some(Self {
            secret: secret.to_vec(),
            mac,
        })
    }

    fn mac(&self, parts: &[&[u8]]) -> String {
        use hmac::Mac;
        let mut mac = self.mac.clone();
        for part in parts {
            mac.update(part);
        }
        hex::encode(mac.finalize().into_bytes())
    }
}

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashKey(…)")
    }
}

/// The conversation key of two users: the same whichever of them is first.
pub fn conversation_key(a: &UserId, b: &UserId) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    format!("{lo}:{hi}")
}

/// A page size from a query string: `default` when absent, else an integer in `1..=max`.
pub fn parse_page_limit(raw: Option<&str>, default: u32, max: u32) -> Result<u32, InputError> {
    match raw {
        None => Ok(default),
        Some(raw) => raw
            .parse()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or(InputError::InvalidLimit),
    }
}

/// Where a request comes from: the source IP API Gateway saw (`requestContext`), the key
/// of the per-client abuse limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceIp(pub String);

/// Who a live access token belongs to: the user, the login session (the family of tokens
/// one OTP login started, which refreshes keep) and when that session ends. Connections are
/// tied to the session, not to the short-lived access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub user: UserId,
    pub session: String,
    pub expires_at: crate::time::Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobile_accepts_e164_and_normalises() {
        // The seed README's own example: possible (country code 1, ten digits), accepted.
        let m = Mobile::parse("+15551234567").expect("the seed's number");
        assert_eq!(m.as_str(), "+15551234567");
        let m = Mobile::parse(" +1 (555) 123-4567 ").expect("with separators");
        assert_eq!(m.as_str(), "+15551234567");
        let m = Mobile::parse("+14155552671").expect("valid US number");
        assert_eq!(m.as_str(), "+14155552671");
        assert_eq!(m.last_digits(), "2671");
        let uk = Mobile::parse("+44 7400 123456").expect("valid UK mobile");
        assert_eq!(uk.as_str(), "+447400123456");
    }

    #[test]
    fn mobile_rejects_garbage() {
        for bad in [
            "",
            "12345",
            "+",
            "+1",
            "4155552671",
            "+1415555267x",
            "+999999999999",
            "+1555123456",
            "+155512345678",
            "+44 12",
            "+4912345678901234",
            "+1 555 123 4567 ext 9",
        ] {
            assert_eq!(Mobile::parse(bad), Err(InputError::InvalidMobile), "{bad}");
        }
    }

    #[test]
    fn ids_round_trip_and_reject_bad_input() {
        let id = UserId::new();
        assert_eq!(UserId::parse(&id.to_string()), Ok(id));
        assert_eq!(UserId::parse("nope"), Err(InputError::InvalidUserId));
        assert_eq!(MessageId::parse("123"), Err(InputError::InvalidMessageId));
    }

    #[test]
    fn message_text_bounds() {
        assert!(MessageText::parse("hi").is_ok());
        assert!(MessageText::parse("   ").is_err());
        assert!(MessageText::parse(&"é".repeat(4000)).is_ok());
        assert!(MessageText::parse(&"é".repeat(4001)).is_err());
    }

    #[test]
    fn display_name_trims_and_bounds() {
        assert_eq!(
            DisplayName::parse("  Ada  ").map(DisplayName::into_string),
            Ok("Ada".to_owned())
        );
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"x".repeat(65)).is_err());
        assert!(DisplayName::parse(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn otp_is_six_digits() {
        for _ in 0..100 {
            let otp = Otp::generate();
            assert_eq!(otp.as_str().len(), 6);
            assert!(Otp::parse(otp.as_str()).is_ok());
        }
        assert!(Otp::parse("12345").is_err());
        assert!(Otp::parse("12345a").is_err());
    }

    #[test]
    fn token_is_256_bits_url_safe_and_hashed() {
        let t = Token::generate();
        assert_eq!(t.expose().len(), 43);
        let k = HashKey::new(&[7; 32]).expect("key");
        assert_eq!(Token::parse(t.expose()).map(|p| p.hash(&k)), Ok(t.hash(&k)));
        assert_ne!(t.hash(&k), Token::generate().hash(&k));
        // Keyed: another key, another hash; and not the unkeyed one.
        let other = HashKey::new(&[8; 32]).expect("key");
        assert_ne!(t.hash(&k), t.hash(&other));
        assert_ne!(t.hash(&k), t.legacy_hash());
        assert!(HashKey::new(b"short").is_none());
        assert!(Token::parse("short").is_err());
    }

    #[test]
    fn conversation_key_is_symmetric() {
        let a = UserId::new();
        let b = UserId::new();
        assert_eq!(conversation_key(&a, &b), conversation_key(&b, &a));
    }

    #[test]
    fn slot_ranges_split_evenly_and_are_checked_at_the_edge() {
        let all = SlotRange::ALL;
        let parts = all.split(16);
        assert_eq!(parts.len(), 16);
        assert_eq!(parts[0].lo(), 0);
        assert_eq!(parts[15].hi(), SLOTS);
        for pair in parts.windows(2) {
            assert_eq!(pair[0].hi(), pair[1].lo(), "contiguous");
            assert_eq!(pair[0].hi() - pair[0].lo(), SLOTS / 16);
        }
        let three = SlotRange::new(10, 13).expect("range");
        assert_eq!(three.split(2).len(), 2);
        assert_eq!(three.split(9).len(), 3, "never more ranges than slots");
        assert!(SlotRange::new(5, 5).is_err());
        assert!(SlotRange::new(0, SLOTS + 1).is_err());
        assert!(serde_json::from_str::<SlotRange>(r#"{"lo":3,"hi":2}"#).is_err());
        let r: SlotRange = serde_json::from_str(r#"{"lo":0,"hi":256}"#).expect("json");
        assert!(r.contains(255) && !r.contains(256));
        // Slots are spread: 4,096 connection ids land in many different ones.
        let slots: std::collections::HashSet<u32> = (0..4096)
            .map(|i| ConnectionId::parse(&format!("c{i}=")).expect("id").slot())
            .collect();
        assert!(slots.len() > 2000, "only {} distinct slots", slots.len());
        assert!(slots.iter().all(|s| *s < SLOTS));
        let id = ConnectionId::parse("L0SM9cOFvHcCIhw=").expect("id");
        assert_eq!(id.slot(), id.clone().slot(), "stable");
    }
}
