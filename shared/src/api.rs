//! The public contract: request bodies and response objects, exactly as clients see them.
//!
//! REST bodies and Socket.IO/JSON event payloads are built from these types only, so the
//! wire format is written down in one place.

use serde::{Deserialize, Serialize};

use crate::domain::{MessageId, UserId};
use crate::time::{self, Timestamp};

/// `POST /users/auth/request_otp`
#[derive(Debug, Deserialize)]
pub struct RequestOtpBody {
    pub mobile: String,
}

/// Response of `request_otp` in emulated mode: the OTP comes back to the caller.
#[derive(Debug, Serialize)]
pub struct OtpIssued {
    pub mobile: String,
    pub otp: String,
    pub expires_in: u64,
}

/// `POST /users/auth/verify`
#[derive(Debug, Deserialize)]
pub struct VerifyBody {
    pub mobile: String,
    pub otp: String,
}

/// Response of `verify`.
#[derive(Debug, Serialize)]
pub struct SessionIssued {
    pub token: String,
    pub user_id: UserId,
    pub display_name: String,
    #[serde(serialize_with = "time::rfc3339")]
    pub expires_at: Timestamp,
}

/// `GET /users/me`, `PATCH /users/me`
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub user_id: UserId,
    pub mobile: String,
    pub display_name: String,
    #[serde(serialize_with = "time::rfc3339")]
    pub created_at: Timestamp,
}

/// `PATCH /users/me`
#[derive(Debug, Deserialize)]
pub struct UpdateProfileBody {
    pub display_name: String,
}

/// A message as history and the `message` event show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageView {
    pub message_id: MessageId,
    pub from: UserId,
    pub to: UserId,
    pub text: String,
    #[serde(serialize_with = "time::rfc3339")]
    pub created_at: Timestamp,
    #[serde(serialize_with = "time::rfc3339_opt")]
    pub delivered_at: Option<Timestamp>,
    #[serde(serialize_with = "time::rfc3339_opt")]
    pub read_at: Option<Timestamp>,
    pub client_id: Option<String>,
}

/// `GET /chat/messages/{other_id}`: one page, oldest first. `next_before` is the cursor for
/// the previous (older) page, `null` when there is none.
#[derive(Debug, Serialize)]
pub struct HistoryPage {
    pub messages: Vec<MessageView>,
    pub next_before: Option<MessageId>,
    pub has_more: bool,
}
