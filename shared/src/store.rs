//! The MongoDB store: collections, their document shapes, and the few queries more than one
//! service shares (locks, duplicate-key detection).
//!
//! Services (`auth`, `users`, `chat`, `realtime`) own their queries; this module owns what a
//! document looks like in the database. Indexes are created by migrations, never here.

use std::time::Duration;

use bson::{DateTime, doc, oid::ObjectId};
use mongodb::{Collection, Database};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

pub use migrations::is_duplicate_key;

/// `users`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserDoc {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub mobile: String,
    pub display_name: String,
    pub created_at: DateTime,
}

/// `otps`: one per mobile, replaced by each request; `requests` keeps the times of recent
/// requests for the rate limit; `rev` makes replacement a compare-and-swap.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OtpDoc {
    #[serde(rename = "_id")]
    pub mobile: String,
    pub otp_hash: String,
    pub expires_at: DateTime,
    pub attempts: i32,
    pub used: bool,
    pub requests: Vec<DateTime>,
    pub rev: i64,
    /// TTL field: when the document (and its rate-limit window) may be forgotten.
    pub purge_at: DateTime,
}

/// `sessions`: `_id` is the SHA-256 of the token; the token itself is never stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionDoc {
    #[serde(rename = "_id")]
    pub token_hash: String,
    pub user_id: ObjectId,
    pub created_at: DateTime,
    pub expires_at: DateTime,
}

/// `messages`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageDoc {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    /// Conversation key: the two user ids, ordered.
    pub conv: String,
    pub from: ObjectId,
    pub to: ObjectId,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `"<from>:<client_id>"` when a client id was given; unique (sparse) for idempotent sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe: Option<String>,
    pub created_at: DateTime,
    /// Not pushed to the recipient before this time (latency illusion).
    pub deliver_after: DateTime,
    pub delivered_at: Option<DateTime>,
    pub read_at: Option<DateTime>,
}

/// `conversations`: one owner's summary of one conversation (maintained by `conversations`
/// on every stored message and every read); `_id` is `"<owner>:<partner>"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversationDoc {
    #[serde(rename = "_id")]
    pub key: String,
    pub owner: ObjectId,
    pub partner: ObjectId,
    /// The newest message of the conversation and its `created_at`.
    pub last_id: ObjectId,
    pub last_at: DateTime,
    /// Messages to the owner not read yet.
    pub unread: i64,
}

/// The protocol a WebSocket connection speaks, so outgoing events are framed for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Engine.IO v4 / Socket.IO v5 over the websocket transport.
    SocketIo,
    /// `{"action":..}` in, `{"event":..,"data":..}` out.
    Json,
    /// Bare Engine.IO v4 (no Socket.IO layer): the protocol conformance server's echo.
    Engine,
}

/// A binary Socket.IO packet whose attachments are still arriving (one frame each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartialPacket {
    pub header: String,
    pub expected: i64,
    pub attachments: Vec<bson::Binary>,
}

/// `connections`: one per live API Gateway WebSocket connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionDoc {
    #[serde(rename = "_id")]
    pub connection_id: String,
    pub protocol: Protocol,
    /// Set once the connection authenticated (at `$connect` for JSON clients, at the
    /// Socket.IO CONNECT packet for Socket.IO clients).
    pub user_id: Option<ObjectId>,
    /// Engine.IO session id (open packet).
    #[serde(default)]
    pub eio_sid: Option<String>,
    /// Socket.IO namespaces this connection joined, with their socket ids.
    #[serde(default)]
    pub namespaces: Vec<NamespaceJoin>,
    pub connected_at: DateTime,
    /// Last sign of life (pong, or any frame for JSON clients).
    pub last_seen: DateTime,
    /// When the last Engine.IO ping was posted.
    #[serde(default)]
    pub last_ping: Option<DateTime>,
    /// Whether the Engine.IO open packet has been delivered.
    #[serde(default)]
    pub opened: bool,
    /// Whether pushes may reach it: set once the client got its CONNECT answer and welcome,
    /// so nothing overtakes them, and never before API Gateway established the connection.
    #[serde(default)]
    pub live: bool,
    /// Whether a Socket.IO CONNECT ever succeeded (the connect timeout only applies before).
    #[serde(default)]
    pub joined_once: bool,
    /// Server-to-client emits that asked for an ack so far (the last ack id used).
    #[serde(default)]
    pub acks_sent: i64,
    /// A binary packet waiting for attachments (only where the transport carries binary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<PartialPacket>,
    /// TTL field: API Gateway closes every connection after 2 hours.
    pub expires_at: DateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceJoin {
    pub ns: String,
    pub sid: String,
}

/// `locks`: short leases that serialise work on one key (e.g. one recipient's deliveries).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockDoc {
    #[serde(rename = "_id")]
    pub key: String,
    pub owner: ObjectId,
    pub until: DateTime,
}

/// Typed handles on every collection.
#[derive(Clone, Debug)]
pub struct Store {
    pub db: Database,
    pub users: Collection<UserDoc>,
    pub otps: Collection<OtpDoc>,
    pub sessions: Collection<SessionDoc>,
    pub messages: Collection<MessageDoc>,
    pub connections: Collection<ConnectionDoc>,
    pub locks: Collection<LockDoc>,
    pub conversations: Collection<ConversationDoc>,
}

impl Store {
    pub fn new(db: Database) -> Self {
        Self {
            users: db.collection("users"),
            otps: db.collection("otps"),
            sessions: db.collection("sessions"),
            messages: db.collection("messages"),
            connections: db.collection("connections"),
            locks: db.collection("locks"),
            conversations: db.collection("conversations"),
            db,
        }
    }

    /// Applies pending migrations (`RUN_MIGRATIONS=1` at cold start).
    pub async fn migrate(&self) -> Result<()> {
        migrations::run_pending(&self.db)
            .await
            .map_err(StoreError::from)?;
        Ok(())
    }

    /// Runs `work` while holding the lease `key`, waiting up to `wait` for it. The lease
    /// expires by itself after `lease` should the holder die.
    pub async fn with_lock<T, F>(
        &self,
        key: &str,
        lease: Duration,
        wait: Duration,
        work: F,
    ) -> Result<T>
    where
        F: AsyncFnOnce() -> Result<T>,
    {
        let owner = ObjectId::new();
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            let now = DateTime::now();
            let until = DateTime::from_millis(now.timestamp_millis() + lease.as_millis() as i64);
            let taken = self
                .locks
                .update_one(
                    doc! { "_id": key, "until": { "$lt": now } },
                    doc! { "$set": { "owner": owner, "until": until } },
                )
                .upsert(true)
                .await;
            match taken {
                Ok(_) => break,
                Err(e) if is_duplicate_key(&e) => {
                    if started.elapsed() > wait {
                        return Err(StoreError::LockTimeout(key.to_owned()).into());
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let result = work().await;
        let released = self
            .locks
            .update_one(
                doc! { "_id": key, "owner": owner },
                doc! { "$set": { "until": DateTime::from_millis(0) } },
            )
            .await;
        if let Err(e) = released {
            // The lease runs out by itself; the work's own result matters more.
            tracing::warn!(error = %e, key, "could not release lock");
        }
        result
    }
}
