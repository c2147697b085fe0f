//! Amazon SNS `Publish` to a phone number, as the functions' SNS SDK client calls it (the AWS
//! query protocol: a form-encoded POST, an XML answer), and the outbox developers and tests
//! read the text messages from: `GET /local/sms/{mobile}` →
//! `{"messages":[{"text":"...","sent_at":"..."}]}`, newest last. Each SMS is also logged.
//!
//! Like SNS, a number it cannot deliver to gets a 400 `InvalidParameter`, and an outage a
//! 500 `InternalError`: `Options::sms_undeliverable` lists such numbers and
//! `Options::sms_outage` fails every publish (the SNS failure paths, for tests).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::Shared;
use crate::ids;

/// Where the emulation listens (the functions' `SNS_ENDPOINT` is this path; the SDK posts
/// to it with a trailing slash).
pub const PATH: &str = "/_aws/sns/";

/// One text message: its text and when it was sent.
pub type Sent = (String, DateTime<Utc>);

/// The text messages sent so far, and the failures to simulate.
#[derive(Debug, Default)]
pub struct SmsCenter {
    outbox: Mutex<HashMap<String, Vec<Sent>>>,
    undeliverable: Mutex<HashSet<String>>,
    outage: AtomicBool,
}

impl SmsCenter {
    pub fn new(undeliverable: HashSet<String>, outage: bool) -> Self {
        Self {
            undeliverable: Mutex::new(undeliverable),
            outage: AtomicBool::new(outage),
            ..Self::default()
        }
    }

    /// Every message sent to `mobile`, oldest first.
    pub fn messages(&self, mobile: &str) -> Vec<Sent> {
        self.outbox
            .lock()
            .map(|o| o.get(mobile).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Refuses `mobile` from now on, as SNS does a number it cannot deliver to.
    pub fn refuse(&self, mobile: &str) {
        if let Ok(mut set) = self.undeliverable.lock() {
            set.insert(mobile.to_owned());
        }
    }

    fn refuses(&self, mobile: &str) -> bool {
        self.undeliverable
            .lock()
            .map(|set| set.contains(mobile))
            .unwrap_or(false)
    }

    /// Makes every publish fail (or succeed again).
    pub fn set_outage(&self, down: bool) {
        self.outage.store(down, Ordering::Relaxed);
    }
}

fn xml(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

fn error(status: StatusCode, kind: &str, code: &str, message: &str) -> Response {
    xml(
        status,
        format!(
            "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
            ids::request_id()
        ),
    )
}

/// `POST /_aws/sns`: `Action=Publish&PhoneNumber=...&Message=...`.
pub(crate) async fn publish(State(shared): State<Shared>, body: String) -> Response {
    shared.api_latency().await;
    let params: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if params.get("Action").map(String::as_str) != Some("Publish") {
        return error(
            StatusCode::BAD_REQUEST,
            "Sender",
            "InvalidAction",
            "only Publish is emulated",
        );
    }
    let (Some(phone), Some(text)) = (params.get("PhoneNumber"), params.get("Message")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "Sender",
            "InvalidParameter",
            "Invalid parameter: PhoneNumber and Message are required",
        );
    };
    let sms = &shared.sms;
    if sms.outage.load(Ordering::Relaxed) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Receiver",
            "InternalError",
            "emulated outage",
        );
    }
    if sms.refuses(phone) {
        return error(
            StatusCode::BAD_REQUEST,
            "Sender",
            "InvalidParameter",
            "Invalid parameter: PhoneNumber Reason: cannot deliver to this number",
        );
    }
    tracing::info!(to = %phone, text = %text, "SMS");
    if let Ok(mut outbox) = sms.outbox.lock() {
        outbox
            .entry(phone.clone())
            .or_default()
            .push((text.clone(), Utc::now()));
    }
    xml(
        StatusCode::OK,
        format!(
            "<PublishResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><PublishResult><MessageId>{}</MessageId></PublishResult><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></PublishResponse>",
            ids::request_id(),
            ids::request_id()
        ),
    )
}

/// `GET /local/sms/{mobile}`: the outbox of one number.
pub(crate) async fn outbox(State(shared): State<Shared>, Path(mobile): Path<String>) -> Response {
    let messages: Vec<_> = shared
        .sms
        .messages(&mobile)
        .into_iter()
        .map(|(text, at)| {
            json!({ "text": text, "sent_at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true) })
        })
        .collect();
    axum::Json(json!({ "messages": messages })).into_response()
}
