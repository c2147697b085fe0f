//! Errors of every core area, and the one place that turns them into what a client sees.
//!
//! Each area has its own enum ([`InputError`], [`AuthError`], [`ChatError`], [`StoreError`],
//! [`PushError`]). [`Error`] wraps them all; [`Error::public`] is the single mapping to an
//! HTTP status, a stable `code` and a human message. HTTP responses (`http.rs`) and socket
//! `system` error events (`realtime`) both use it, so no handler carries its own match.
//! Causes stay in the chain for the logs; a client never sees `{:?}` of an internal error.

use std::time::Duration;

use thiserror::Error;

/// Bad input, caught while parsing at the edge.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum InputError {
    #[error("mobile must be a valid phone number in international E.164 form, e.g. +14155552671")]
    InvalidMobile,
    #[error("otp must be 6 digits")]
    InvalidOtp,
    #[error("not a valid user id")]
    InvalidUserId,
    #[error("not a valid message id")]
    InvalidMessageId,
    #[error("not a valid connection id")]
    InvalidConnectionId,
    #[error("text must be 1 to 4000 characters and not only white space")]
    InvalidMessageText,
    #[error("client_id must be 1 to 128 characters without control characters")]
    InvalidClientId,
    #[error("display_name must be 1 to 64 characters after trimming")]
    InvalidDisplayName,
    #[error("malformed token")]
    InvalidToken,
    #[error("limit must be an integer from 1 to 200")]
    InvalidLimit,
    #[error("order must be `strict` when given")]
    InvalidOrder,
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("request body has the wrong shape: {0}")]
    InvalidBody(String),
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
}

/// Login, sessions and tokens.
#[derive(Debug, Error)]
pub enum AuthError {
    #[error("too many OTP requests for this number; try again later")]
    RateLimited { retry_after: Duration },
    #[error("the OTP is wrong")]
    OtpInvalid,
    #[error("the OTP has expired; request a new one")]
    OtpExpired,
    #[error("too many wrong attempts; request a new OTP")]
    OtpLocked,
    #[error("missing, unknown, expired or revoked token")]
    Unauthorized,
    #[error("this refresh token was already used; the session has been ended, log in again")]
    RefreshReused,
}

/// Conversations and messages.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ChatError {
    #[error("no such user")]
    UnknownUser,
    #[error("you cannot send a message to yourself")]
    SelfMessage,
    #[error("no such message")]
    UnknownMessage,
    #[error("only the recipient of a message may mark it read")]
    Forbidden,
    #[error("the `before` cursor does not name a message of this conversation")]
    InvalidCursor,
    #[error("unknown event; the events are send_message, typing and read")]
    UnknownEvent(String),
    #[error("this client_id was already used for a different message (another `to` or `text`)")]
    ClientIdConflict,
    #[error("the `before` cursor is not one this API returned")]
    InvalidListCursor,
    #[error("too many phone number lookups; try again later")]
    LookupRateLimited { retry_after: Duration },
    #[error("too many messages and typing events; slow down")]
    EventRateLimited { retry_after: Duration },
}

/// The database.
#[derive(Debug, Error)]
pub enum StoreError {
    /// (Its text, with the driver's, goes to the logs only: responses get a fixed message.)
    #[error("database error: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error("stored document could not be read")]
    Bson(#[from] bson::de::Error),
    #[error("could not take lock `{0}` in time")]
    LockTimeout(String),
    #[error("lost lock `{0}` to another holder (it ran out)")]
    LockLost(String),
    /// A statement of a multi-statement write failed (`code: message` from the reply).
    #[error("database write failed: {0}")]
    Write(String),
    #[error("migration failed")]
    Migration(#[from] migrations::MigrationError),
}

/// Sending text messages (OTPs).
#[derive(Debug, Error)]
pub enum SmsError {
    #[error("text messages cannot be delivered to this number")]
    Undeliverable,
    #[error("SMS provider failed: {0}")]
    Unavailable(String),
}

/// Pushing to connections and invoking the scheduler.
#[derive(Debug, Error)]
pub enum PushError {
    #[error("connection is gone")]
    Gone,
    #[error("payload is larger than a WebSocket message may be")]
    PayloadTooLarge,
    #[error("@connections call failed: {0}")]
    Management(String),
    #[error("async invoke failed: {0}")]
    Invoke(String),
}

/// Any core error.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Chat(#[from] ChatError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Push(#[from] PushError),
    #[error(transparent)]
    Sms(#[from] SmsError),
}

impl From<mongodb::error::Error> for Error {
    fn from(e: mongodb::error::Error) -> Self {
        Error::Store(StoreError::Mongo(e))
    }
}

impl From<bson::de::Error> for Error {
    fn from(e: bson::de::Error) -> Self {
        Error::Store(StoreError::Bson(e))
    }
}

/// What a client is told about an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl Error {
    /// The one mapping from core errors to status, code and message.
    pub fn public(&self) -> PublicError {
        let (status, code) = match self {
            Error::Input(e) => match e {
                InputError::InvalidMobile => (400, "invalid_mobile"),
                InputError::InvalidOtp => (400, "invalid_otp"),
                InputError::InvalidUserId => (400, "invalid_user_id"),
                InputError::InvalidMessageId => (400, "invalid_message_id"),
                InputError::InvalidConnectionId => (400, "invalid_connection_id"),
                InputError::InvalidMessageText => (400, "invalid_text"),
                InputError::InvalidClientId => (400, "invalid_client_id"),
                InputError::InvalidDisplayName => (400, "invalid_display_name"),
                // A malformed token is just an unknown one to the client.
                InputError::InvalidToken => (401, "unauthorized"),
                InputError::InvalidLimit => (400, "invalid_limit"),
                InputError::InvalidOrder => (400, "invalid_order"),
                InputError::MalformedJson(_) => (400, "malformed_json"),
                InputError::InvalidBody(_) => (400, "invalid_body"),
                InputError::BodyTooLarge { .. } => (413, "payload_too_large"),
            },
            Error::Auth(e) => match e {
                AuthError::RateLimited { .. } => (429, "rate_limited"),
                AuthError::OtpInvalid => (401, "otp_invalid"),
                AuthError::OtpExpired => (401, "otp_expired"),
                AuthError::OtpLocked => (401, "otp_locked"),
                AuthError::Unauthorized => (401, "unauthorized"),
                AuthError::RefreshReused => (401, "refresh_reused"),
            },
            Error::Chat(e) => match e {
                ChatError::UnknownUser => (404, "unknown_user"),
                ChatError::SelfMessage => (400, "self_message"),
                ChatError::UnknownMessage => (404, "unknown_message"),
                ChatError::Forbidden => (403, "forbidden"),
                ChatError::InvalidCursor => (400, "invalid_cursor"),
                ChatError::UnknownEvent(_) => (400, "unknown_event"),
                ChatError::ClientIdConflict => (409, "client_id_conflict"),
                ChatError::InvalidListCursor => (400, "invalid_cursor"),
                ChatError::LookupRateLimited { .. } | ChatError::EventRateLimited { .. } => {
                    (429, "rate_limited")
                }
            },
            Error::Store(StoreError::LockTimeout(_) | StoreError::LockLost(_)) => (503, "busy"),
            Error::Store(_) => (503, "unavailable"),
            Error::Push(PushError::PayloadTooLarge) => (413, "payload_too_large"),
            Error::Push(_) => (502, "push_failed"),
            Error::Sms(SmsError::Undeliverable) => (400, "undeliverable_mobile"),
            Error::Sms(SmsError::Unavailable(_)) => (503, "unavailable"),
        };
        let message = match self {
            // Internal failures get a fixed message: their details belong in the logs.
            Error::Store(StoreError::LockTimeout(_) | StoreError::LockLost(_)) => {
                "the service is busy; try again".to_owned()
            }
            Error::Store(_) => "the database is unavailable; try again".to_owned(),
            Error::Push(PushError::Management(_) | PushError::Invoke(_)) => {
                "could not reach the WebSocket API; try again".to_owned()
            }
            Error::Sms(SmsError::Unavailable(_)) => {
                "could not send the text message; try again".to_owned()
            }
            Error::Input(InputError::InvalidToken) => AuthError::Unauthorized.to_string(),
            other => other.to_string(),
        };
        let retry_after = match self {
            Error::Auth(AuthError::RateLimited { retry_after })
            | Error::Chat(
                ChatError::LookupRateLimited { retry_after }
                | ChatError::EventRateLimited { retry_after },
            ) => Some(*retry_after),
            _ => None,
        };
        PublicError {
            status,
            code,
            message,
            retry_after,
        }
    }

    /// Whether the error is the server's fault (logged at error level) or the client's.
    pub fn is_internal(&self) -> bool {
        self.public().status >= 500
    }
}

/// What is wrong with a JSON document, without repeating any of its values (serde's own
/// messages quote them: `invalid type: integer `123456``), so neither the error answer nor the
/// log echoes what a client submitted.
pub fn json_problem(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    // A document already parsed (`from_value`) has no position.
    let at = match e.line() {
        0 => String::new(),
        line => format!(" at line {line}, column {}", e.column()),
    };
    match e.classify() {
        Category::Syntax => format!("syntax error{at}"),
        Category::Eof => format!("unexpected end{at}"),
        Category::Io => "could not be read".to_owned(),
        Category::Data => {
            let text = e.to_string();
            // Field names are the API's own, not the client's values.
            match text.strip_prefix("missing field ") {
                Some(rest) => format!("missing field {}", rest.split(' ').next().unwrap_or("")),
                None => format!("a field has the wrong type or value{at}"),
            }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let e: Error = AuthError::RateLimited {
            retry_after: Duration::from_secs(7),
        }
        .into();
        let p = e.public();
        assert_eq!((p.status, p.code), (429, "rate_limited"));
        assert_eq!(p.retry_after, Some(Duration::from_secs(7)));
        let p = Error::from(InputError::InvalidToken).public();
        assert_eq!((p.status, p.code), (401, "unauthorized"));
        let p = Error::from(ChatError::Forbidden).public();
        assert_eq!((p.status, p.code), (403, "forbidden"));
    }

    #[test]
    fn json_problems_do_not_echo_values() {
        #[derive(Debug, serde::Deserialize)]
        struct Body {
            #[allow(dead_code)]
            otp: String,
        }
        for raw in [
            r#"{"otp":123456}"#,
            r#"{"otp":["secret-ish"]}"#,
            r#"{"otp":"123456","#,
            "{}",
        ] {
            let e = serde_json::from_str::<Body>(raw).unwrap_err();
            let text = json_problem(&e);
            assert!(
                !text.contains("123456") && !text.contains("secret"),
                "{text}"
            );
        }
        let e = serde_json::from_str::<Body>("{}").unwrap_err();
        assert_eq!(json_problem(&e), "missing field `otp`");
        let unknown = Error::from(ChatError::UnknownEvent("my-secret-name".into()));
        assert!(!unknown.public().message.contains("my-secret"));
    }

    #[test]
    fn internal_errors_hide_details() {
        let e = Error::Push(PushError::Management("secret endpoint detail".into()));
        assert!(!e.public().message.contains("secret"));
        assert!(e.is_internal());
    }
}
