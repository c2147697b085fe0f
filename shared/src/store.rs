//! The MongoDB store: collections, their document shapes, and the few queries more than one
//! service shares (locks, duplicate-key detection).
//!
//! Services (`auth`, `users`, `chat`, `realtime`) own their queries; this module owns what a
//! document looks like in the database. Indexes are created by migrations, never here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bson::{DateTime, Document, doc, oid::ObjectId};
use mongodb::{Collection, Database};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

pub use migrations::{DUPLICATE_KEY, is_duplicate_key};

/// `users`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserDoc {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub mobile: String,
    pub display_name: String,
    pub created_at: DateTime,
}

/// `otps`: one per mobile, replaced by each request; `rev` makes replacement a
/// compare-and-swap (the request limits are in `rate_limits`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OtpDoc {
    #[serde(rename = "_id")]
    pub mobile: String,
    pub otp_hash: String,
    pub expires_at: DateTime,
    pub attempts: i32,
    pub used: bool,
    pub rev: i64,
    /// TTL field: when the document (and its rate-limit window) may be forgotten.
    pub purge_at: DateTime,
}

/// `sessions`: one short-lived access token. `_id` is its keyed hash; the token itself is
/// never stored. `family` is the login session it belongs to (absent on tokens issued
/// before refresh tokens existed: their own hash is their session).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionDoc {
    #[serde(rename = "_id")]
    pub token_hash: String,
    pub user_id: ObjectId,
    pub created_at: DateTime,
    pub expires_at: DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_expires_at: Option<DateTime>,
}

/// `refresh_tokens`: one refresh token of a login session (`family`). It works once:
/// `used` flips when it is exchanged, and presenting a used one ends the whole family.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshDoc {
    #[serde(rename = "_id")]
    pub token_hash: String,
    pub family: String,
    pub user_id: ObjectId,
    pub created_at: DateTime,
    /// When the login session ends (fixed at login; refreshing does not extend it).
    pub expires_at: DateTime,
    pub used: bool,
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
    /// The login session (its token hash) that authenticated the connection, and when that
    /// session expires: logging out or expiry ends the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expires_at: Option<DateTime>,
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
    /// Its sweep slot ([`ConnectionId::slot`](crate::domain::ConnectionId::slot)): which
    /// sweep shard looks after it. Records from before slots have none (the shard with slot
    /// 0 takes them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<i32>,
    /// The recoverable session (Socket.IO `pid`, JSON `resume`) this connection carries on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    /// Whether its events carry their offsets (the client implements recovery: it sent a
    /// `pid`, or it speaks plain JSON).
    #[serde(default)]
    pub offsets: bool,
    /// A long-polling session that upgraded: the WebSocket connection that carries it now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws_id: Option<String>,
    /// A long-polling session that a WebSocket connection is probing (upgrade started).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub probing: bool,
    /// A long-polling session's pending `GET` holds it until then (one at a time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_until: Option<DateTime>,
}

/// `poll_queue`: a server packet waiting for a long-polling session's next `GET`, in
/// insertion order (`_id`). Binary packets are stored as the payload encoding has them
/// (`b` + base64).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PollPacketDoc {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    /// The polling session's connection id.
    pub conn: String,
    pub packet: String,
    /// TTL field: nobody fetched it.
    pub expires_at: DateTime,
}

/// `poll_upgrades`: a WebSocket connection opened with a polling session's `sid`, probing
/// it and then carrying it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PollUpgradeDoc {
    /// The WebSocket connection id.
    #[serde(rename = "_id")]
    pub ws_id: String,
    /// The polling session's connection id.
    pub conn: String,
    pub expires_at: DateTime,
}

/// A lock document's counter alone ([`LockDoc::seq`]), as [`Store::advance_counter`] and
/// [`Store::counter`] read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CounterDoc {
    #[serde(default)]
    seq: i64,
}

/// `logged_events`: one event of a user's log, at its offset (index `user_offset`, unique),
/// forgotten by a TTL index once the recovery window is over.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoggedEventDoc {
    pub user: ObjectId,
    pub offset: i64,
    #[serde(flatten)]
    pub event: LoggedEvent,
    pub expires_at: DateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoggedEvent {
    /// The event's name (`message`, `delivered`, ...).
    pub n: String,
    /// Its payload, as JSON text.
    pub d: String,
    pub at: DateTime,
}

/// `recovery_sessions`: a recoverable session (`pid`) of one user's device. `end_offset` is
/// the newest offset its last connection is known to have been sent before it ended (for a
/// client that sent no offset of its own).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoveryDoc {
    #[serde(rename = "_id")]
    pub pid: String,
    pub user_id: ObjectId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_offset: Option<i64>,
    pub expires_at: DateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceJoin {
    pub ns: String,
    pub sid: String,
}

/// `locks`: short leases that serialise work on one key (e.g. one recipient's inbox). No TTL:
/// an inbox's document also holds its user's recovery-log head ([`LockDoc::seq`]), one per
/// user like the user itself; offsets must never start over.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockDoc {
    #[serde(rename = "_id")]
    pub key: String,
    pub owner: ObjectId,
    pub until: DateTime,
    /// What the last holder recorded for the next one (an inbox: its newest `created_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<DateTime>,
    /// The last holder gave the lease back with its work finished (an inbox: nothing left
    /// undelivered). Cleared when the lease is taken, so a holder that dies leaves it false.
    #[serde(default)]
    pub settled: bool,
    /// What the last holder finished whose recording may still be on its way when the next
    /// holder starts (an inbox: messages pushed, their `delivered_at` being set while the
    /// lease is given back). The next holder treats them as done.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finishing: Vec<ObjectId>,
    /// When a holder last changed who the work reaches (an inbox: a device went live under
    /// it), by that holder's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_at: Option<DateTime>,
    /// What `settled` was when the current holder took the lease.
    #[serde(default)]
    pub was_settled: bool,
    /// [`LockDoc::seq`] as the current holder's take left it.
    #[serde(default)]
    pub taken_seq: i64,
    /// A counter on the key that holders ([`Store::acquire_reserving`]) and others
    /// ([`Store::advance_counter`]) advance (an inbox: its user's recovery-log head).
    #[serde(default)]
    pub seq: i64,
}

/// The lock key of `user`'s inbox, whose document also holds their recovery-log head.
pub fn inbox_key(user: crate::domain::UserId) -> String {
    format!("inbox:{user}")
}

/// What a holder hands the next one when it gives a lease back ([`Store::release`]).
#[derive(Debug, Clone, Default)]
pub struct Handback {
    /// See [`LockDoc::last`]; kept as it was when `None`.
    pub last: Option<DateTime>,
    /// See [`LockDoc::settled`].
    pub settled: bool,
    /// See [`LockDoc::finishing`].
    pub finishing: Vec<ObjectId>,
    /// See [`LockDoc::live_at`]; kept as it was when `None`.
    pub live_at: Option<DateTime>,
}

/// A lease held on one key; give it back with [`Store::release`].
#[derive(Debug)]
pub struct Lease {
    pub key: String,
    owner: ObjectId,
    ttl: Duration,
    /// The `last` the previous holder recorded.
    pub last: Option<DateTime>,
    /// Whether the previous holder gave the lease back settled (see [`LockDoc::settled`]).
    pub settled: bool,
    /// What the previous holder was still recording (see [`LockDoc::finishing`]).
    pub finishing: Vec<ObjectId>,
    /// See [`LockDoc::live_at`].
    pub live_at: Option<DateTime>,
    /// The values of [`LockDoc::seq`] this take advanced it past (empty unless asked for).
    pub reserved: std::ops::Range<i64>,
    taken_at: std::time::Instant,
}

/// The longest pause between two tries of a waiter for a held lease.
pub const MAX_LEASE_POLL: Duration = Duration::from_millis(20);

/// The background renewal of a held lease ([`Store::keep_alive`]); stops when dropped.
#[derive(Debug)]
pub struct KeepAlive {
    lost: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl KeepAlive {
    /// Whether a renewal found the lease taken by another holder.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Typed handles on every collection.
#[derive(Clone, Debug)]
pub struct Store {
    pub db: Database,
    pub users: Collection<UserDoc>,
    pub otps: Collection<OtpDoc>,
    pub sessions: Collection<SessionDoc>,
    pub refresh_tokens: Collection<RefreshDoc>,
    pub messages: Collection<MessageDoc>,
    pub connections: Collection<ConnectionDoc>,
    pub locks: Collection<LockDoc>,
    pub conversations: Collection<ConversationDoc>,
    pub rate_limits: Collection<RateLimitDoc>,
    pub logged_events: Collection<LoggedEventDoc>,
    pub recovery_sessions: Collection<RecoveryDoc>,
    pub poll_queue: Collection<PollPacketDoc>,
    pub poll_upgrades: Collection<PollUpgradeDoc>,
}

/// `rate_limits`: hits on one key within one fixed window (`<key>@<window start ms>`); a
/// TTL index forgets it when the window is over.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RateLimitDoc {
    #[serde(rename = "_id")]
    pub key: String,
    pub hits: i64,
    pub expires_at: DateTime,
}

/// `rate_limits`, token-bucket keys (`bucket:<key>`): the bucket as one timestamp, the
/// "theoretical arrival time" of the generic cell rate algorithm (GCRA): full when `tat` is
/// in the past, empty when it is a whole window ahead. The TTL index forgets it once full.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BucketDoc {
    #[serde(rename = "_id")]
    pub key: String,
    /// Milliseconds since the epoch.
    pub tat: i64,
    pub expires_at: DateTime,
}

impl Store {
    pub fn new(db: Database) -> Self {
        Self {
            users: db.collection("users"),
            otps: db.collection("otps"),
            sessions: db.collection("sessions"),
            refresh_tokens: db.collection("refresh_tokens"),
            messages: db.collection("messages"),
            connections: db.collection("connections"),
            locks: db.collection("locks"),
            conversations: db.collection("conversations"),
            rate_limits: db.collection("rate_limits"),
            logged_events: db.collection("logged_events"),
            recovery_sessions: db.collection("recovery_sessions"),
            poll_queue: db.collection("poll_queue"),
            poll_upgrades: db.collection("poll_upgrades"),
            db,
        }
    }

    /// Takes the lease `key` for `ttl`, waiting up to `wait` while another holder has it
    /// (polling with a backoff from 2 ms up to [`MAX_LEASE_POLL`]). A
    /// holder that dies loses the lease when `ttl` runs out; a long holder keeps it with
    /// [`Store::keep_alive`].
    pub async fn acquire(&self, key: &str, ttl: Duration, wait: Duration) -> Result<Lease> {
        self.acquire_reserving(key, ttl, wait, 0).await
    }

    /// Like [`Store::acquire`], advancing the key's counter ([`LockDoc::seq`]) by `reserve`
    /// in the same round trip; the values it went past are [`Lease::reserved`].
    pub async fn acquire_reserving(
        &self,
        key: &str,
        ttl: Duration,
        wait: Duration,
        reserve: i64,
    ) -> Result<Lease> {
        let owner = ObjectId::new();
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            let now = DateTime::now();
            let until = DateTime::from_millis(now.timestamp_millis() + ttl.as_millis() as i64);
            // Matches only a lease that ran out; while one is held the upsert collides on `_id`.
            // One pipeline stage, so every field reads the document it writes. The take changes
            // nothing the previous holder handed back but `settled`, which it keeps as
            // `was_settled`, and records the counter as it left it (`taken_seq`): the lease is
            // read from the document as this take left it.
            let seq = doc! { "$add": [{ "$ifNull": ["$seq", 0_i64] }, reserve.max(0)] };
            let take = vec![doc! { "$set": {
                "owner": owner,
                "until": until,
                "was_settled": { "$ifNull": ["$settled", false] },
                "settled": false,
                "seq": seq.clone(),
                "taken_seq": seq,
            } }];
            let taken = self
                .locks
                .find_one_and_update(doc! { "_id": key, "until": { "$lt": now } }, take)
                .upsert(true)
                .return_document(mongodb::options::ReturnDocument::After)
                .await;
            let taken = match taken {
                Ok(Some(after)) => Some(after),
                // Under concurrent writes this database can answer a take it made with no
                // document (and a stale one when asked for the document before the write):
                // whether this take holds the lease is in the document itself.
                Ok(None) => self
                    .locks
                    .find_one(doc! { "_id": key })
                    .await?
                    .filter(|d| d.owner == owner),
                Err(e) if is_duplicate_key(&e) => None,
                Err(e) => return Err(e.into()),
            };
            if let Some(after) = taken {
                return Ok(Lease {
                    reserved: after.taken_seq - reserve.max(0) + 1..after.taken_seq + 1,
                    key: key.to_owned(),
                    owner,
                    ttl,
                    last: after.last,
                    settled: after.was_settled,
                    live_at: after.live_at,
                    finishing: after.finishing,
                    taken_at: std::time::Instant::now(),
                });
            }
            if started.elapsed() > wait {
                return Err(StoreError::LockTimeout(key.to_owned()).into());
            }
            // Jittered, so waiters on one key do not retry in step.
            let jitter = rand::Rng::random_range(&mut rand::rng(), 0.5..1.5);
            tokio::time::sleep(pause.mul_f64(jitter)).await;
            pause = (pause * 2).min(MAX_LEASE_POLL);
        }
    }

    /// Advances the counter of `key` ([`LockDoc::seq`]) by `n` without the lease; returns
    /// its new value. A key without a document gets one, as a lease that has run out.
    pub async fn advance_counter(&self, key: &str, n: i64) -> Result<i64> {
        let after = modify_or_create(
            &self.locks.clone_with_type(),
            key,
            doc! { "$inc": { "seq": n } },
            // A first advance makes the document a lease that has run out, at `n`.
            || {
                doc! {
                    "_id": key,
                    "seq": n,
                    "owner": ObjectId::new(),
                    "until": DateTime::from_millis(0),
                    "settled": false,
                }
            },
            || format!("counter of {key}"),
        )
        .await?;
        Ok(bson::from_document::<CounterDoc>(after)
            .map_err(|e| StoreError::Write(format!("counter of {key}: {e}")))?
            .seq)
    }

    /// The counter of `key` ([`LockDoc::seq`]; 0 before it was first advanced).
    pub async fn counter(&self, key: &str) -> Result<i64> {
        Ok(self
            .locks
            .clone_with_type::<CounterDoc>()
            .find_one(doc! { "_id": key })
            .projection(doc! { "seq": 1 })
            .await?
            .map_or(0, |c| c.seq))
    }

    /// Extends the lease `key` held by `owner` by `ttl` from now; `false` when it was lost
    /// (ran out and another holder took it), and the work under it must stop.
    async fn renew(&self, key: &str, owner: ObjectId, ttl: Duration) -> Result<bool> {
        let now = DateTime::now();
        let until = DateTime::from_millis(now.timestamp_millis() + ttl.as_millis() as i64);
        let res = self
            .locks
            .update_one(
                doc! { "_id": key, "owner": owner },
                doc! { "$set": { "until": until } },
            )
            .await?;
        Ok(res.matched_count == 1)
    }

    /// Renews `lease` in the background every quarter of its ttl until the returned guard
    /// is dropped: a holder slowed down by a saturated database keeps its lease as long as it
    /// runs, and one that dies loses it after the ttl. [`KeepAlive::lost`] says whether a
    /// renewal found the lease gone (the work under it must stop).
    pub fn keep_alive(&self, lease: &Lease) -> KeepAlive {
        let lost = Arc::new(AtomicBool::new(false));
        let task = tokio::runtime::Handle::try_current().ok().map(|rt| {
            let (store, key, owner, ttl) =
                (self.clone(), lease.key.clone(), lease.owner, lease.ttl);
            let lost = lost.clone();
            rt.spawn(async move {
                loop {
                    tokio::time::sleep(ttl / 4).await;
                    match store.renew(&key, owner, ttl).await {
                        Ok(true) => {}
                        Ok(false) => {
                            lost.store(true, Ordering::Release);
                            return;
                        }
                        Err(e) => tracing::warn!(error = %e, key, "could not renew a lease"),
                    }
                }
            })
        });
        KeepAlive { lost, task }
    }

    /// Gives a lease back with what the next holder should know ([`Handback`]).
    pub async fn release(&self, lease: Lease, handback: Handback) {
        let Handback {
            last,
            settled,
            finishing,
            live_at,
        } = handback;
        let held = lease.taken_at.elapsed();
        if held > Duration::from_secs(1) {
            tracing::warn!(key = lease.key, ?held, "a lease was held for long");
        }
        // Ran out a moment ago: the next `until < now` matches at once. A new owner, so a
        // background renewal still on its way cannot take the lease back.
        let mut set = doc! {
            "until": DateTime::from_millis(DateTime::now().timestamp_millis() - 1),
            "owner": ObjectId::new(),
            "settled": settled,
            "finishing": finishing,
        };
        if let Some(last) = last {
            set.insert("last", last);
        }
        if let Some(live_at) = live_at {
            set.insert("live_at", live_at);
        }
        let released = self
            .locks
            .update_one(
                doc! { "_id": &lease.key, "owner": lease.owner },
                doc! { "$set": set },
            )
            .await;
        if let Err(e) = released {
            // The lease runs out by itself; the work's own result matters more.
            tracing::warn!(error = %e, key = lease.key, "could not release a lease");
        }
    }
}

/// Applies `update` to the document `_id: id` and returns it as the update left it, or, when
/// there is none, inserts `created()` (the document as that update would make it from nothing)
/// and returns that. Each call is applied exactly once.
///
/// Not an upsert: under concurrent writes this database can answer an upsert whose insert
/// collided with another's (the write then made as an update) with no document, though the
/// write landed, so the caller cannot tell whether to count it again. A `findAndModify`
/// without upsert and a plain insert are always answered truly. It costs one round trip when
/// the document exists, two the first time. Gives up, as a [`StoreError::LockTimeout`] naming
/// `what()`, only if others create and delete the document over and over. `created` and `what`
/// are called only when needed, so the common case builds neither.
pub async fn modify_or_create(
    coll: &Collection<Document>,
    id: &str,
    update: Document,
    created: impl Fn() -> Document,
    what: impl FnOnce() -> String,
) -> Result<Document> {
    for _ in 0..4 {
        let modified = coll
            .find_one_and_update(doc! { "_id": id }, update.clone())
            .return_document(mongodb::options::ReturnDocument::After)
            .await?;
        if let Some(after) = modified {
            return Ok(after);
        }
        let created = created();
        match coll.insert_one(&created).await {
            Ok(_) => return Ok(created),
            // Created by another call meanwhile: modify it.
            Err(e) if is_duplicate_key(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::LockTimeout(what()).into())
}
