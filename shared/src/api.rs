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
    /// Only with `OTP_MODE=emulated`; with `sms` the code goes by text message alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otp: Option<String>,
    pub expires_in: u64,
}

/// `POST /users/auth/verify`
#[derive(Debug, Deserialize)]
pub struct VerifyBody {
    pub mobile: String,
    pub otp: String,
}

/// `POST /users/auth/refresh`
#[derive(Debug, Deserialize)]
pub struct RefreshBody {
    pub refresh_token: String,
}

/// Response of `verify` and `refresh`.
#[derive(Debug, Serialize)]
pub struct SessionIssued {
    /// The access token (`Authorization: Bearer …`, Socket.IO `auth.token`).
    pub token: String,
    /// When the access token stops working.
    #[serde(serialize_with = "time::rfc3339")]
    pub expires_at: Timestamp,
    /// Exchanged once at `POST /users/auth/refresh` for a new pair.
    pub refresh_token: String,
    /// When the login session ends: no refresh works after it.
    #[serde(serialize_with = "time::rfc3339")]
    pub refresh_expires_at: Timestamp,
    pub user_id: UserId,
    pub display_name: String,
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

/// Another user as the conversation list and the phone-number lookup show them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserSummary {
    pub user_id: UserId,
    pub display_name: String,
}

/// One entry of `GET /chat/conversations`.
#[derive(Debug, Clone, Serialize)]
pub struct ConversationView {
    pub user: UserSummary,
    pub last_message: MessageView,
    pub unread: u64,
}

/// `GET /chat/conversations`: newest first. `next_before` is an opaque cursor for the next
/// (older) page, `null` when there is none.
#[derive(Debug, Serialize)]
pub struct ConversationsPage {
    pub conversations: Vec<ConversationView>,
    pub next_before: Option<String>,
    pub has_more: bool,
}

/// `POST /chat/conversations`
#[derive(Debug, Deserialize)]
pub struct StartConversationBody {
    pub mobile: String,
}

/// Response of `POST /chat/conversations`: who has that number, nothing more.
#[derive(Debug, Serialize)]
pub struct ConversationStarted {
    pub user: UserSummary,
}

/// The `unread` event, to a reader's connections: the unread count of the conversation with
/// `user_id` after a read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnreadEvent {
    pub user_id: UserId,
    pub unread: u64,
}

/// `send_message` (Socket.IO event and plain-JSON action).
#[derive(Debug, Deserialize)]
pub struct SendMessageArgs {
    pub to: String,
    pub text: String,
    #[serde(default)]
    pub client_id: Option<String>,
}

/// `typing` (Socket.IO event and plain-JSON action).
#[derive(Debug, Deserialize)]
pub struct TypingArgs {
    pub to: String,
    pub typing: bool,
}

/// `read` (Socket.IO event and plain-JSON action): one message (`message_id`), or every
/// unread message from that message's sender up to and including it (`up_to`, which wins
/// when both are given). One of the two is required.
#[derive(Debug, Deserialize)]
#[serde(try_from = "ReadArgsWire")]
pub struct ReadArgs {
    pub message_id: String,
    pub up_to: Option<String>,
}

#[derive(Deserialize)]
struct ReadArgsWire {
    message_id: Option<String>,
    up_to: Option<String>,
}

impl TryFrom<ReadArgsWire> for ReadArgs {
    type Error = &'static str;

    fn try_from(w: ReadArgsWire) -> Result<Self, Self::Error> {
        match (w.message_id, w.up_to) {
            (None, None) => Err("missing field `message_id` (or `up_to`)"),
            (message_id, up_to) => Ok(ReadArgs {
                message_id: message_id.unwrap_or_default(),
                up_to,
            }),
        }
    }
}

/// The `message` event: what sender and recipient connections receive, and what an ack of
/// `send_message` carries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageEvent {
    pub message_id: MessageId,
    pub from: UserId,
    pub to: UserId,
    pub text: String,
    #[serde(serialize_with = "time::rfc3339")]
    pub created_at: Timestamp,
    pub client_id: Option<String>,
}

/// The `delivered` event, to the sender's connections.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveredEvent {
    pub message_id: MessageId,
    pub to: UserId,
    #[serde(serialize_with = "time::rfc3339")]
    pub delivered_at: Timestamp,
}

/// The `read` event, to the sender's connections.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadEvent {
    pub message_id: MessageId,
    pub by: UserId,
    #[serde(serialize_with = "time::rfc3339")]
    pub read_at: Timestamp,
}

/// The `read_ack` event, to the reader.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadAckEvent {
    pub message_id: MessageId,
    #[serde(serialize_with = "time::rfc3339")]
    pub read_at: Timestamp,
}

/// The `typing` event, to the recipient's connections.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TypingEvent {
    pub from: UserId,
    pub typing: bool,
}

/// The `system` event: server notices.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SystemEvent {
    /// After a successful authentication: who you are and how many stored messages follow.
    Welcome {
        user_id: UserId,
        pending: u64,
        /// Plain-JSON clients: the recoverable session (`?resume=<pid>:<offset>`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pid: Option<String>,
        /// Plain-JSON clients resuming: whether the session was recovered (the events it
        /// missed follow, then the backlog).
        #[serde(skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
    },
    /// A refused event; the connection stays open.
    Error {
        code: String,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        event: Option<String>,
        /// `rate_limited`: whole seconds until the event would be accepted.
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
}
