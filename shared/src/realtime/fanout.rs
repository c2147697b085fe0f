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
//!
//! A holder that leaves nothing undelivered gives the lease back *settled*; the next holder
//! then knows what waits without asking the database (only what it stored itself), which
//! saves the query on the common path of a send to an online recipient.
//!
//! A delivery's last round is recorded (`delivered_at`) while the lease is given back, not
//! before: the lease is free one database round trip sooner, which is when the recipient's
//! next send tends to arrive. The lease carries those messages' ids to the next holder
//! ([`LockDoc::finishing`](crate::store::LockDoc)), which counts them as delivered even if
//! their record has not landed yet; nothing is pushed twice.
//!
//! The inbox's document also holds its user's recovery-log head (`realtime::recovery`): a
//! send to an online recipient advances it as it takes the lease, so the message's event has
//! its offset without a round trip of its own. An offset so taken and not used is logged as
//! skipped when the lease is given back.

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
use crate::realtime::events::{self, ServerEvent};
use crate::realtime::outbox::{self, post_frame, post_logged};
use crate::realtime::recovery::{self, Start};
use crate::realtime::sio_env::AppEnv;
use crate::socketio::runtime::{self, FirstFrame};
use crate::store::{
    ConnectionDoc, Handback, KeepAlive, Lease, LoggedEventDoc, MessageDoc, Protocol, Store,
    inbox_key,
};
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

/// How long an inbox lease lasts unless renewed: a holder renews it in the background
/// while it runs (see [`Store::keep_alive`]), so this is how long a holder that died blocks
/// the inbox.
pub const INBOX_LEASE: Duration = Duration::from_secs(20);
/// The most two instances' clocks are assumed to differ by (see
/// [`Inbox::devices_changed_since`]).
pub const CLOCK_SKEW: Duration = Duration::from_secs(1);
/// At most this many ids of earlier holders' unrecorded messages are handed on (a record
/// that failed for good leaves its ids until a query sees them; this bounds the lease).
const HANDED_ON: usize = 256;
/// How long to wait for another holder of an inbox.
const WAIT_FOR_INBOX: Duration = Duration::from_secs(8);
/// Messages pushed per round (one query, one log append, one post each, one update).
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

/// `events`, logged at `offsets`, framed for `conn` (with their offsets if it tracks them).
fn framed(
    conn: &ConnectionDoc,
    events: &[ServerEvent],
    offsets: &[Option<i64>],
) -> Vec<(String, Option<i64>)> {
    events
        .iter()
        .zip(offsets)
        .map(|(e, o)| (e.frame_at(conn.protocol, o.filter(|_| conn.offsets)), *o))
        .collect()
}

/// A message this delivery marked delivered, with the time it set.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub message: MessageDoc,
    pub at: time::Timestamp,
}

/// One recipient's inbox, held under its lease (see the module docs). Give it back with
/// [`Inbox::close`], which records the delivery's last round; one dropped without it is
/// recorded and given back in the background.
#[derive(Debug)]
pub struct Inbox {
    pub user: UserId,
    store: Store,
    lease: Option<Lease>,
    keep: Option<KeepAlive>,
    newest: Option<bson::DateTime>,
    /// Everything undelivered in this inbox, when known without asking the database: the
    /// previous holder left it settled and only this holder changed it since. `None` once
    /// that is not known.
    waiting: std::sync::Mutex<Option<Vec<MessageDoc>>>,
    /// Pushed in the last round of a delivery, `delivered_at` not recorded yet: recorded by
    /// [`Inbox::close`] while the lease is given back.
    unmarked: std::sync::Mutex<Vec<MessageDoc>>,
    /// Messages an earlier holder pushed whose record may not have landed: handed on from
    /// holder to holder until a query sees them recorded (a record can take longer than a
    /// holder, when it is retried).
    finishing: std::sync::Mutex<Vec<bson::oid::ObjectId>>,
    /// Set when a device of this user went live under this holder.
    live_at: Option<bson::DateTime>,
    /// Recovery-log offsets taken with the lease and not used yet (see
    /// [`Inbox::open_for_send`]); logged as skipped when the lease is given back.
    reserved: std::sync::Mutex<Vec<i64>>,
    /// The recovery window (how long a skipped offset is kept in the log).
    log_window: Duration,
}

impl Inbox {
    pub async fn open(app: &App, user: UserId) -> Result<Inbox> {
        Self::open_within(app, user, WAIT_FOR_INBOX).await
    }

    /// Like [`Inbox::open`], waiting at most `wait` for another holder.
    pub async fn open_within(app: &App, user: UserId, wait: Duration) -> Result<Inbox> {
        Self::take(app, user, wait, false, 0).await
    }

    /// Like [`Inbox::open`] for a send, trusting a lease given back settled: its delivery
    /// pushes what this holder stored without querying. (Only a send does: a holder that
    /// stalled past its lease and stored a message after losing it leaves a message the
    /// lease does not know of, and the sweep and a reconnect, which query, deliver it.)
    /// With `log_offset` (the recipient is online and the message goes out now) the lease
    /// also takes the recovery-log offset of the message's event, in the same round trip.
    pub async fn open_for_send(app: &App, user: UserId, log_offset: bool) -> Result<Inbox> {
        let reserve = i64::from(log_offset && recovery::enabled(app));
        Self::take(app, user, WAIT_FOR_INBOX, true, reserve).await
    }

    async fn take(
        app: &App,
        user: UserId,
        wait: Duration,
        trust_settled: bool,
        reserve: i64,
    ) -> Result<Inbox> {
        let lease = app
            .store
            .acquire_reserving(&inbox_key(user), INBOX_LEASE, wait, reserve)
            .await?;
        let known = (trust_settled && lease.settled).then(Vec::new);
        Ok(Inbox {
            user,
            store: app.store.clone(),
            keep: Some(app.store.keep_alive(&lease)),
            waiting: std::sync::Mutex::new(known),
            finishing: std::sync::Mutex::new(lease.finishing.clone()),
            reserved: std::sync::Mutex::new(lease.reserved.clone().collect()),
            log_window: app.config.ws.recovery_window,
            lease: Some(lease),
            newest: None,
            unmarked: std::sync::Mutex::new(Vec::new()),
            live_at: None,
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

    /// Records a message this holder stored in the inbox (not delivered yet).
    pub fn stored(&mut self, message: &MessageDoc) {
        if let Ok(Some(waiting)) = self.waiting.get_mut() {
            waiting.push(message.clone());
        }
    }

    /// Whether nothing is left undelivered, as far as this holder knows.
    fn settled(&self) -> bool {
        self.waiting
            .lock()
            .is_ok_and(|w| w.as_ref().is_some_and(Vec::is_empty))
    }

    /// Whether a device of this user may have gone live after `read_at` (when a list of the
    /// user's connections read before this lease was taken started): then that list may lack
    /// it, and must be read again. Allows for [`CLOCK_SKEW`] between instances.
    pub fn devices_changed_since(&self, read_at: time::Timestamp) -> bool {
        let since = read_at - chrono::TimeDelta::from_std(CLOCK_SKEW).unwrap_or_default();
        self.lease
            .as_ref()
            .and_then(|l| l.live_at)
            .is_some_and(|at| time::from_bson(at) >= since)
    }

    /// What the next holder learns when the lease is given back, `unmarked` still being
    /// recorded.
    fn handback(&self, settled: bool, unmarked: &[MessageDoc]) -> Handback {
        Handback {
            last: self.newest,
            settled,
            finishing: {
                let mut ids: Vec<_> = unmarked.iter().map(|m| m.id).collect();
                if let Ok(earlier) = self.finishing.lock() {
                    ids.extend(earlier.iter().take(HANDED_ON).copied());
                }
                ids
            },
            live_at: self.live_at,
        }
    }

    /// Takes up to `n` of the offsets reserved with the lease, oldest first.
    fn take_reserved(&self, n: usize) -> Vec<i64> {
        self.reserved
            .lock()
            .map(|mut r| {
                let n = n.min(r.len());
                r.drain(..n).collect()
            })
            .unwrap_or_default()
    }

    /// The log entries that mark this holder's unused reserved offsets as skipped.
    fn unused_offsets(&self) -> Vec<LoggedEventDoc> {
        let unused = self.take_reserved(usize::MAX);
        if unused.is_empty() {
            return Vec::new();
        }
        recovery::skipped(self.log_window, self.user, &unused)
    }

    /// Takes the messages pushed but not recorded yet.
    fn take_unmarked(&self) -> Vec<MessageDoc> {
        self.unmarked
            .lock()
            .map(|mut u| std::mem::take(&mut *u))
            .unwrap_or_default()
    }

    /// Whether the previous holder was still recording `id` as delivered when it gave the
    /// lease back.
    fn finishing(&self, id: &bson::oid::ObjectId) -> bool {
        self.finishing.lock().is_ok_and(|f| f.contains(id))
    }

    /// Forgets the handed-on ids a full read of what is undelivered (`undelivered`) no
    /// longer holds: their records have landed.
    fn recorded(&self, undelivered: &[MessageDoc]) {
        if let Ok(mut f) = self.finishing.lock() {
            f.retain(|id| undelivered.iter().any(|m| m.id == *id));
        }
    }

    /// How many messages wait in this inbox.
    pub async fn pending_count(&self, app: &App) -> Result<u64> {
        let mut filter = doc! { "to": self.user.object_id(), "delivered_at": bson::Bson::Null };
        let finishing = self.finishing.lock().map(|f| f.clone()).unwrap_or_default();
        if !finishing.is_empty() {
            filter.insert("_id", doc! { "$nin": finishing });
        }
        Ok(app.store.messages.count_documents(filter).await?)
    }

    /// Gives the lease back while recording the delivery's last round; returns what that
    /// record marked delivered (for [`notify_senders`], with what [`Inbox::deliver`]
    /// returned).
    pub async fn close(mut self) -> Result<Vec<Delivered>> {
        self.keep.take();
        let settled = self.settled();
        let unmarked = self.take_unmarked();
        let handback = self.handback(settled, &unmarked);
        let skipped = self.unused_offsets();
        hand_back(&self.store, self.lease.take(), handback, &unmarked, skipped).await
    }

    /// Fails once the lease is known to be lost: nothing more may be pushed under it.
    fn still_held(&self) -> Result<()> {
        match (&self.lease, &self.keep) {
            (Some(lease), Some(keep)) if keep.lost() => {
                Err(StoreError::LockLost(lease.key.clone()).into())
            }
            _ => Ok(()),
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
        // A round an earlier call left to `close` is recorded first: it is not due again.
        let earlier = self.take_unmarked();
        let mut delivered = record_delivered(&app.store, &earlier).await?;
        // Unknown from here until this delivery ends with nothing left undelivered.
        let mut waiting = self.waiting.lock().ok().and_then(|mut w| w.take());
        let mut settled = false;
        loop {
            let mut full_page = false;
            let pending: Vec<MessageDoc> = match waiting.take() {
                Some(known) => known,
                None => {
                    let page: Vec<MessageDoc> = app
                        .store
                        .messages
                        .find(
                            doc! { "to": self.user.object_id(), "delivered_at": bson::Bson::Null },
                        )
                        .sort(doc! { "created_at": 1, "_id": 1 })
                        .limit(PAGE)
                        .await?
                        .try_collect()
                        .await?;
                    full_page = page.len() as i64 == PAGE;
                    if !full_page {
                        self.recorded(&page);
                    }
                    page.into_iter()
                        .filter(|m| !self.finishing(&m.id))
                        .collect()
                }
            };
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
                settled = pending.is_empty();
                break;
            }
            if conns.is_none() {
                conns = Some(conns_of(app, self.user, known).await?);
            }
            let targets: Vec<(ConnectionId, &ConnectionDoc)> = conns
                .iter()
                .flatten()
                .filter_map(|c| Some((c.id()?, c)))
                .filter(|(id, _)| !failed.contains(id))
                .collect();
            if targets.is_empty() {
                break;
            }
            // In the recipient's recovery log, in order, before any device can see them.
            let events: Vec<ServerEvent> = batch
                .iter()
                .map(|m| ServerEvent::Message(message_event(m)))
                .collect();
            let reserved = self.take_reserved(events.len());
            let offsets = recovery::append_reserved(app, self.user, &events, reserved).await?;
            self.still_held()?;
            // Each connection gets the page in order; connections in parallel. Message i
            // counts as delivered when some connection took frames 0..=i. A connection that
            // missed a frame gets nothing more from this delivery (it would see a gap).
            let posts = targets.iter().map(|(id, c)| {
                let frames = framed(c, &events, &offsets);
                async move { (id, post_logged(app, c, &frames).await) }
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
            if taken < batch.len() || cut < pending.len() || !full_page {
                settled = taken == batch.len() && cut == pending.len() && !full_page;
                // The last round: recorded by `close` while the lease is given back.
                if let Ok(mut unmarked) = self.unmarked.lock() {
                    unmarked.extend_from_slice(&batch[..taken]);
                }
                break;
            }
            let marked = record_delivered(&app.store, &batch[..taken]).await?;
            delivered.extend(marked);
        }
        if settled && let Ok(mut waiting) = self.waiting.lock() {
            *waiting = Some(Vec::new());
        }
        Ok(delivered)
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.keep.take();
        if let Some(lease) = self.lease.take() {
            let store = self.store.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let unmarked = self.take_unmarked();
                let handback = self.handback(false, &unmarked);
                let skipped = self.unused_offsets();
                rt.spawn(async move {
                    let marked = hand_back(&store, Some(lease), handback, &unmarked, skipped).await;
                    if let Err(e) = marked {
                        tracing::warn!(error = %e, "could not record a delivery");
                    }
                });
            }
        }
    }
}

/// Gives `lease` back while recording `unmarked` (a delivery's last round) as delivered and
/// logging `skipped` (offsets reserved with the lease and not used); returns what the record
/// marked.
async fn hand_back(
    store: &Store,
    lease: Option<Lease>,
    handback: Handback,
    unmarked: &[MessageDoc],
    skipped: Vec<LoggedEventDoc>,
) -> Result<Vec<Delivered>> {
    let release = async {
        if let Some(lease) = lease {
            store.release(lease, handback).await;
        }
    };
    let skip = async {
        if !skipped.is_empty()
            && let Err(e) = store.logged_events.insert_many(skipped).await
        {
            // A hole in the log: a device that saw the offset before it recovers into a
            // new session (its welcome and the backlog), as after a lost append.
            tracing::warn!(error = %e, "could not log skipped recovery offsets");
        }
    };
    let (marked, (), ()) = futures::join!(record_delivered(store, unmarked), release, skip);
    marked
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
    let last_round = inbox.close().await;
    let delivered = with_last_round(result?, last_round);
    notify_senders(app, recipient, &delivered, None, None).await?;
    Ok(delivered.len())
}

/// A device goes live under its user's inbox lease: its first frames, then live, then the
/// backlog, oldest first. Nothing can overtake the first frames, and no delivery can run
/// between them and the backlog, so a message sent meanwhile reaches this device too.
///
/// The first frames: for a new session the welcome, with the exact count of what waits
/// (and, for a plain-JSON client, its `pid`); for a recovered one (`start`) every event of
/// the user's log after the client's offset, with their offsets (a plain-JSON client gets a
/// welcome saying `recovered` first). `first_needs_establishing`: the connection may not
/// exist yet in API Gateway (a plain-JSON client's first frame).
pub async fn go_live(
    app: &App,
    conn: &ConnectionDoc,
    user: UserId,
    first_needs_establishing: bool,
    start: Option<&Start>,
) -> Result<bool> {
    let Some(id) = conn.id() else {
        return Ok(false);
    };
    let protocol = conn.protocol;
    let mut inbox = Inbox::open(app, user).await?;
    let result: Result<Option<Vec<Delivered>>> = async {
        let json_pid = (protocol == Protocol::Json)
            .then(|| start.map(|s| s.pid().to_owned()))
            .flatten();
        let (welcome, replay_after) = match start {
            Some(Start::Recovered { after, .. }) => {
                let welcome = (protocol == Protocol::Json).then(|| {
                    ServerEvent::System(SystemEvent::Welcome {
                        user_id: user,
                        pending: 0,
                        pid: json_pid.clone(),
                        recovered: Some(true),
                    })
                });
                (welcome, Some(*after))
            }
            _ => {
                let pending = inbox.pending_count(app).await?;
                let welcome = ServerEvent::System(SystemEvent::Welcome {
                    user_id: user,
                    pending,
                    recovered: json_pid.as_ref().map(|_| false),
                    pid: json_pid.clone(),
                });
                (Some(welcome), None)
            }
        };
        let mut first: Vec<(String, Option<i64>)> =
            welcome.iter().map(|w| (w.frame(protocol), None)).collect();
        let mut last = replay_after;
        if let Some(after) = replay_after {
            let missed = recovery::since(app, user, after).await?.unwrap_or_default();
            last = missed.last().map_or(Some(after), |r| Some(r.offset));
            first.extend(missed.iter().map(|r| {
                let frame = events::frame_of(protocol, &r.name, &r.data, Some(r.offset));
                (frame, Some(r.offset))
            }));
        }
        let mut frames = first.into_iter();
        if let Some((head, _)) = frames.next() {
            let posted = if first_needs_establishing {
                let env = AppEnv::new(app);
                let sent =
                    runtime::send_when_established(&env, &id, head, outbox::ESTABLISH_WAIT).await;
                sent == FirstFrame::Sent
            } else {
                post_frame(app, &id, head).await.is_ok()
            };
            if !posted {
                return Ok(None);
            }
        }
        let rest: Vec<(String, Option<i64>)> = frames.collect();
        if post_logged(app, conn, &rest).await < rest.len() {
            return Ok(None);
        }
        if !connections::set_live(app, &id).await? {
            return Ok(None);
        }
        if let (Some(after), Some(Start::Recovered { pid, .. })) = (last, start) {
            // Events logged while the replay went out, before this device was live.
            let late = recovery::since(app, user, after).await?.unwrap_or_default();
            let late: Vec<(String, Option<i64>)> = late
                .iter()
                .map(|r| {
                    let frame = events::frame_of(protocol, &r.name, &r.data, Some(r.offset));
                    (frame, Some(r.offset))
                })
                .collect();
            post_logged(app, conn, &late).await;
            recovery::resumed(app, pid).await?;
        }
        Ok(Some(inbox.deliver(app, Due::All, None).await?))
    }
    .await;
    // A device may have gone live under this lease (by now, whatever the result): a send
    // that read the user's connections before taking it reads them again.
    inbox.live_at = Some(time::to_bson(time::now()));
    let last_round = inbox.close().await;
    let Some(delivered) = result? else {
        return Ok(false);
    };
    let delivered = with_last_round(delivered, last_round);
    notify_senders(app, user, &delivered, None, None).await?;
    Ok(true)
}

/// What [`Inbox::deliver`] marked, with what [`Inbox::close`] marked of its last round. A
/// last round that could not be recorded was pushed all the same: its senders get no
/// `delivered`, and it stays undelivered for the next push.
pub fn with_last_round(
    mut delivered: Vec<Delivered>,
    last_round: Result<Vec<Delivered>>,
) -> Vec<Delivered> {
    match last_round {
        Ok(last) => delivered.extend(last),
        Err(e) => tracing::warn!(error = %e, "could not record a delivery"),
    }
    delivered
}

/// How long a delivery keeps trying to record what it pushed while the database is away.
const RECORD_DELIVERED_FOR: Duration = Duration::from_secs(10);

/// [`mark_delivered`], tried again while the database is away (a restart, a failover): the
/// messages were pushed, and if they stayed undelivered the next delivery would push them a
/// second time.
async fn record_delivered(store: &Store, batch: &[MessageDoc]) -> Result<Vec<Delivered>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let deadline = tokio::time::Instant::now() + RECORD_DELIVERED_FOR;
    let mut pause = Duration::from_millis(100);
    // One timestamp for every try: a try that was applied but not answered is found again
    // by it (its messages are then this delivery's).
    let at = time::now();
    loop {
        match mark_delivered(store, batch, at).await {
            Ok(marked) => return Ok(marked),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "could not record a delivery; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sets `delivered_at` on those of `batch` not delivered yet; returns the ones this call
/// changed (another path, e.g. a `read`, may have got to some first).
async fn mark_delivered(
    store: &Store,
    batch: &[MessageDoc],
    at: time::Timestamp,
) -> Result<Vec<Delivered>> {
    let ids: Vec<bson::oid::ObjectId> = batch.iter().map(|m| m.id).collect();
    let res = store
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
    let ours: HashSet<bson::oid::ObjectId> = store
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

/// `delivered` to each sender's connections, once per message a delivery marked. With
/// `echo` (a message just sent, to its sender's devices), the echo goes first to its sender:
/// logged with that sender's notices in one append and posted before them on each device.
pub async fn notify_senders(
    app: &App,
    recipient: UserId,
    delivered: &[Delivered],
    known: Option<Known<'_>>,
    echo: Option<&MessageEvent>,
) -> Result<()> {
    let mut senders: Vec<UserId> = delivered
        .iter()
        .map(|d| UserId::from_object_id(d.message.from))
        .chain(echo.map(|e| e.from))
        .collect();
    senders.sort();
    senders.dedup();
    for sender in senders {
        // Sent (and logged for recovery) even when no device of the sender is online.
        let conns = conns_of(app, sender, known).await?;
        let events: Vec<ServerEvent> = echo
            .filter(|e| e.from == sender)
            .map(|e| ServerEvent::Message(e.clone()))
            .into_iter()
            .chain(
                delivered
                    .iter()
                    .filter(|d| UserId::from_object_id(d.message.from) == sender)
                    .map(|d| {
                        ServerEvent::Delivered(DeliveredEvent {
                            message_id: MessageId::from_object_id(d.message.id),
                            to: recipient,
                            delivered_at: d.at,
                        })
                    }),
            )
            .collect();
        // Logged in order (so a recovering device replays them in it), then posted in that
        // order to each device, devices in parallel.
        let offsets = outbox::log_all(app, sender, &events).await;
        join_all(conns.iter().map(|c| {
            let frames = framed(c, &events, &offsets);
            async move { post_logged(app, c, &frames).await }
        }))
        .await;
    }
    Ok(())
}
