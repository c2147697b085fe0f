//! Getting messages to recipients (the posting itself is `outbox`).
//!
//! Messages reach a recipient through their [`Inbox`]: a lease on `inbox:<user>` under which
//! everything that decides what a recipient's devices see happens, one holder at a time,
//! whichever function instance it runs on:
//! - storing a message to them (so `created_at` order, the order of history, is the order in
//!   which messages become visible to a delivery);
//! - pushing undelivered messages, oldest first, and marking them delivered;
//! - a device going live (its welcome, then the backlog).
//!
//! So a later message never overtakes an earlier one, and no message is pushed twice to a
//! device: a delivery only pushes messages not yet marked delivered, and only one delivery
//! runs at a time. `delivered` goes to the sender once, for the delivery that set
//! `delivered_at`, with that timestamp. A message nobody took stays undelivered: the next
//! delivery, reconnect or sweep tries again.

use std::collections::HashSet;
use std::time::Duration;

use bson::doc;
use futures::TryStreamExt;
use futures::future::join_all;

use crate::api::{DeliveredEvent, MessageEvent, SystemEvent};
use crate::app::App;
use crate::domain::{ConnectionId, MessageId, UserId};
use crate::error::{Result, StoreError};
use crate::realtime::connections;
use crate::realtime::events::ServerEvent;
use crate::realtime::outbox::{self, post_frame, post_frames, push};
use crate::realtime::sio_env::AppEnv;
use crate::socketio::runtime::{self, FirstFrame};
use crate::store::{ConnectionDoc, Lease, MessageDoc, Protocol, Store};
use crate::time;

pub fn message_event(m: &MessageDoc) -> MessageEvent {
    MessageEvent {
        message_id: MessageId::from_object_id(m.id),
        from: UserId::from_object_id(m.from),
        to: UserId::from_object_id(m.to),
        text: m.text.clone(),
        created_at: time::from_bson(m.created_at),
        client_id: m.client_id.clone(),
    }
}

/// Which undelivered messages a delivery takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Those whose delay has passed, and every older one (order is kept).
    Now,
    /// All of them (the recipient just connected).
    All,
}

/// How long an inbox lease lasts unless renewed (a holder that dies blocks no longer).
pub const INBOX_LEASE: Duration = Duration::from_secs(10);
/// How long to wait for another holder of an inbox.
const WAIT_FOR_INBOX: Duration = Duration::from_secs(8);
/// Messages pushed between two lease renewals: at an AWS-like 15 ms a post, well inside
/// the lease.
const PAGE: i64 = 100;

/// Connections already read from the database for some users (to save a round trip).
#[derive(Debug, Clone, Copy)]
pub struct Known<'a> {
    pub users: &'a [UserId],
    pub conns: &'a [ConnectionDoc],
}

impl Known<'_> {
    fn of(&self, user: UserId) -> Option<Vec<ConnectionDoc>> {
        self.users.contains(&user).then(|| {
            self.conns
                .iter()
                .filter(|c| c.user() == Some(user))
                .cloned()
                .collect()
        })
    }
}

async fn conns_of(app: &App, user: UserId, known: Option<Known<'_>>) -> Result<Vec<ConnectionDoc>> {
    match known.and_then(|k| k.of(user)) {
        Some(c) => Ok(c),
        None => connections::of_users(app, &[user]).await,
    }
}

/// A message this delivery marked delivered, with the time it set.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub message: MessageDoc,
    pub at: time::Timestamp,
}

/// One recipient's inbox, held under its lease (see the module docs). Give it back with
/// [`Inbox::close`]; one dropped without it is given back in the background.
#[derive(Debug)]
pub struct Inbox {
    pub user: UserId,
    store: Store,
    lease: Option<Lease>,
    newest: Option<bson::DateTime>,
}

impl Inbox {
    pub async fn open(app: &App, user: UserId) -> Result<Inbox> {
        Self::open_within(app, user, WAIT_FOR_INBOX).await
    }

    /// Like [`Inbox::open`], waiting at most `wait` for another holder.
    pub async fn open_within(app: &App, user: UserId, wait: Duration) -> Result<Inbox> {
        let lease = app
            .store
            .acquire(&format!("inbox:{user}"), INBOX_LEASE, wait)
            .await?;
        Ok(Inbox {
            user,
            store: app.store.clone(),
            lease: Some(lease),
            newest: None,
        })
    }

    /// The `created_at` of a message stored now: after every message already in this inbox,
    /// even if this instance's clock is behind the last holder's.
    pub fn next_created_at(&mut self) -> time::Timestamp {
        let now = time::now();
        let last = self
            .newest
            .or_else(|| self.lease.as_ref().and_then(|l| l.last))
            .map(time::from_bson);
        let at = match last {
            Some(l) if l >= now => l + chrono::TimeDelta::milliseconds(1),
            _ => now,
        };
        self.newest = Some(time::to_bson(at));
        at
    }

    /// Gives the lease back.
    pub async fn close(mut self) {
        if let Some(lease) = self.lease.take() {
            self.store.release(lease, self.newest).await;
        }
    }

    async fn renew(&self) -> Result<()> {
        let Some(lease) = &self.lease else {
            return Ok(());
        };
        if self.store.renew(lease).await? {
            Ok(())
        } else {
            Err(StoreError::LockLost(lease.key.clone()).into())
        }
    }

    /// Pushes the inbox's undelivered messages (those `due`), oldest first, to every live
    /// connection of its user, page by page, and marks them delivered. Returns what this
    /// call marked delivered: tell their senders with [`notify_senders`] once the inbox is
    /// closed (the notices need no lease).
    pub async fn deliver(
        &self,
        app: &App,
        due: Due,
        known: Option<Known<'_>>,
    ) -> Result<Vec<Delivered>> {
        let mut conns: Option<Vec<ConnectionDoc>> = None;
        let mut failed: HashSet<ConnectionId> = HashSet::new();
        let mut delivered = Vec::new();
        loop {
            let pending: Vec<MessageDoc> = app
                .store
                .messages
                .find(doc! { "to": self.user.object_id(), "delivered_at": bson::Bson::Null })
                .sort(doc! { "created_at": 1, "_id": 1 })
                .limit(PAGE)
                .await?
                .try_collect()
                .await?;
            let full_page = pending.len() as i64 == PAGE;
            // A message this holder just stored may carry a `created_at` a little ahead of
            // this clock (see `next_created_at`); it is due all the same.
            let now = self
                .newest
                .map(time::from_bson)
                .map_or_else(time::now, |n| n.max(time::now()));
            let cut = match due {
                Due::All => pending.len(),
                Due::Now => pending
                    .iter()
                    .rposition(|m| time::from_bson(m.deliver_after) <= now)
                    .map_or(0, |i| i + 1),
            };
            let batch = &pending[..cut];
            if batch.is_empty() {
                break;
            }
            if conns.is_none() {
                conns = Some(conns_of(app, self.user, known).await?);
            }
            let targets: Vec<(ConnectionId, Protocol)> = conns
                .iter()
                .flatten()
                .filter_map(|c| Some((c.id()?, c.protocol)))
                .filter(|(id, _)| !failed.contains(id))
                .collect();
            if targets.is_empty() {
                break;
            }
            // Each connection gets the page in order; connections in parallel. Message i
            // counts as delivered when some connection took frames 0..=i. A connection that
            // missed a frame gets nothing more from this delivery (it would see a gap).
            let posts = targets.iter().map(|(id, protocol)| {
                let frames: Vec<String> = batch
                    .iter()
                    .map(|m| ServerEvent::Message(message_event(m)).frame(*protocol))
                    .collect();
                async move { (id, post_frames(app, id, &frames).await) }
            });
            let mut taken = 0;
            for (id, posted) in join_all(posts).await {
                taken = taken.max(posted);
                if posted < batch.len() {
                    failed.insert(id.clone());
                }
            }
            if taken == 0 {
                break;
            }
            let marked = mark_delivered(app, &batch[..taken]).await?;
            delivered.extend(marked);
            if taken < batch.len() || cut < pending.len() || !full_page {
                break;
            }
            self.renew().await?;
        }
        Ok(delivered)
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            let store = self.store.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let newest = self.newest;
                rt.spawn(async move { store.release(lease, newest).await });
            }
        }
    }
}

/// Delivers what waits for `recipient` under their inbox lease; returns how many messages
/// this call marked delivered.
pub async fn deliver_pending(app: &App, recipient: UserId, due: Due) -> Result<usize> {
    deliver_pending_within(app, recipient, due, WAIT_FOR_INBOX).await
}

/// Like [`deliver_pending`], waiting at most `wait` for the inbox (the sweep does not wait:
/// a busy inbox is being delivered to already, and the next sweep looks again).
pub async fn deliver_pending_within(
    app: &App,
    recipient: UserId,
    due: Due,
    wait: Duration,
) -> Result<usize> {
    let inbox = Inbox::open_within(app, recipient, wait).await?;
    let result = inbox.deliver(app, due, None).await;
    inbox.close().await;
    let delivered = result?;
    notify_senders(app, recipient, &delivered, None).await?;
    Ok(delivered.len())
}

/// A device goes live under its user's inbox lease: its first frames (the welcome, with the
/// exact count of what waits), then live, then the backlog, oldest first. Nothing can
/// overtake the welcome, and no delivery can run between the welcome and the backlog, so a
/// message sent meanwhile reaches this device too. `first_needs_establishing`: the
/// connection may not exist yet in API Gateway (a plain-JSON client's first frame).
pub async fn go_live(
    app: &App,
    id: &ConnectionId,
    protocol: Protocol,
    user: UserId,
    first_needs_establishing: bool,
) -> Result<bool> {
    let inbox = Inbox::open(app, user).await?;
    let result: Result<Option<Vec<Delivered>>> = async {
        let pending = pending_count(app, user).await?;
        let welcome = ServerEvent::System(SystemEvent::Welcome {
            user_id: user,
            pending,
        })
        .frame(protocol);
        let posted = if first_needs_establishing {
            let env = AppEnv::new(app);
            let first =
                runtime::send_when_established(&env, id, welcome, outbox::ESTABLISH_WAIT).await;
            first == FirstFrame::Sent
        } else {
            post_frame(app, id, welcome).await.is_ok()
        };
        if !posted || !connections::set_live(app, id).await? {
            return Ok(None);
        }
        Ok(Some(inbox.deliver(app, Due::All, None).await?))
    }
    .await;
    inbox.close().await;
    let Some(delivered) = result? else {
        return Ok(false);
    };
    notify_senders(app, user, &delivered, None).await?;
    Ok(true)
}

/// Sets `delivered_at` on those of `batch` not delivered yet; returns the ones this call
/// changed (another path, e.g. a `read`, may have got to some first).
async fn mark_delivered(app: &App, batch: &[MessageDoc]) -> Result<Vec<Delivered>> {
    let at = time::now();
    let ids: Vec<bson::oid::ObjectId> = batch.iter().map(|m| m.id).collect();
    let res = app
        .store
        .messages
        .update_many(
            doc! { "_id": { "$in": &ids }, "delivered_at": bson::Bson::Null },
            doc! { "$set": { "delivered_at": time::to_bson(at) } },
        )
        .await?;
    if res.modified_count as usize == batch.len() {
        return Ok(batch
            .iter()
            .map(|m| Delivered {
                message: m.clone(),
                at,
            })
            .collect());
    }
    let ours: HashSet<bson::oid::ObjectId> = app
        .store
        .messages
        .find(doc! { "_id": { "$in": &ids }, "delivered_at": time::to_bson(at) })
        .projection(doc! { "_id": 1 })
        .await?
        .try_collect::<Vec<MessageDoc>>()
        .await
        .map(|v| v.into_iter().map(|m| m.id).collect())
        .or_else(|_| Ok::<_, mongodb::error::Error>(HashSet::new()))?;
    Ok(batch
        .iter()
        .filter(|m| ours.contains(&m.id))
        .map(|m| Delivered {
            message: m.clone(),
            at,
        })
        .collect())
}

/// `delivered` to each sender's connections, once per message a delivery marked (posted
/// concurrently: their order carries no meaning).
pub async fn notify_senders(
    app: &App,
    recipient: UserId,
    delivered: &[Delivered],
    known: Option<Known<'_>>,
) -> Result<()> {
    let mut senders: Vec<UserId> = delivered
        .iter()
        .map(|d| UserId::from_object_id(d.message.from))
        .collect();
    senders.sort();
    senders.dedup();
    for sender in senders {
        let conns = conns_of(app, sender, known).await?;
        if conns.is_empty() {
            continue;
        }
        let notices = delivered
            .iter()
            .filter(|d| UserId::from_object_id(d.message.from) == sender)
            .map(|d| {
                let event = ServerEvent::Delivered(DeliveredEvent {
                    message_id: MessageId::from_object_id(d.message.id),
                    to: recipient,
                    delivered_at: d.at,
                });
                let conns = &conns;
                async move { push(app, conns, &event).await }
            });
        join_all(notices).await;
    }
    Ok(())
}

/// How many messages wait for `user`.
pub async fn pending_count(app: &App, user: UserId) -> Result<u64> {
    Ok(app
        .store
        .messages
        .count_documents(doc! { "to": user.object_id(), "delivered_at": bson::Bson::Null })
        .await?)
}
