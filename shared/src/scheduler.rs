//! The scheduled invoker: one function, two ways in.
//!
//! - Asynchronous tasks from other functions ([`Task`]): post the Engine.IO open packet once
//!   a new connection exists (`$connect` cannot post to itself), welcome a plain-JSON client,
//!   deliver a message after its latency-illusion delay, end a phantom typing indicator.
//! - The schedule (EventBridge, every minute in AWS; a timer locally): the sweep pings
//!   Socket.IO connections, drops silent ones and ones that never sent CONNECT, delivers
//!   overdue messages to connected recipients, and runs phantom typing. Past
//!   `SWEEP_SHARD_MAX` connections it is sharded: connection records carry a slot (a hash of
//!   their id), and the sweep hands ranges of slots to asynchronous invocations of itself
//!   ([`Task::Sweep`]), so no invocation handles more than that many connections.

use std::time::Duration;

use bson::doc;
use serde::Serialize;
use serde_json::Value;

use crate::api::TypingEvent;
use crate::app::App;
use crate::domain::{SlotRange, UserId};
use crate::error::{Error, InputError, Result, StoreError};
use crate::realtime::events::ServerEvent;
use crate::realtime::fanout::{self, Due};
use crate::realtime::recovery::Start;
use crate::realtime::sio_env::{AppEnv, engine_config};
use crate::realtime::{connections, outbox, phantom};
use crate::socketio::runtime;
use crate::store::{ConnectionDoc, Handback};
pub use crate::task::Task;
use crate::time;

/// What one invocation did (returned to the invoker and logged).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub opened: usize,
    pub pinged: usize,
    pub dropped: usize,
    pub delivered: usize,
    pub phantoms: usize,
    /// Connections closed because their login session expired.
    pub ended: usize,
    /// Sweep shards this invocation handed on (asynchronous invokes).
    pub shards: usize,
}

/// How late a message must be before the sweep delivers it.
const OVERDUE_GRACE: Duration = Duration::from_secs(2);
/// The longest a delivery task waits for its due time.
const MAX_TASK_SLEEP: Duration = Duration::from_secs(10);

/// The scheduler function's entry: a [`Task`], or a scheduled event (sweep).
pub async fn handle(app: &App, payload: Value) -> Result<Report> {
    if payload.get("task").is_some() {
        let task: Task = serde_json::from_value(payload)
            .map_err(|e| InputError::InvalidBody(format!("scheduler task: {e}")))?;
        let span = tracing::info_span!("scheduler", task = ?task);
        let _enter = span.enter();
        return run_task(app, task).await;
    }
    if payload.get("source").and_then(Value::as_str) == Some("aws.events")
        || payload.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
    {
        return sweep_all(app).await;
    }
    Err(InputError::InvalidBody("not a scheduler task nor a scheduled event".into()).into())
}

async fn sleep_until_ms(at_ms: i64) {
    let wait = at_ms - time::now().timestamp_millis();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64).min(MAX_TASK_SLEEP)).await;
    }
}

/// Runs one task. Lambda retries a failed asynchronous invocation, so every task is safe to
/// run twice: an opened connection is not opened again, a live one not welcomed again, and
/// deliveries only push what is still undelivered.
pub async fn run_task(app: &App, task: Task) -> Result<Report> {
    let mut report = Report::default();
    match task {
        Task::Open { connection_id: id } => {
            if runtime::open(&AppEnv::new(app), &engine_config(app), &id).await? {
                report.opened = 1;
            }
        }
        Task::Close { connection_id: id } => {
            // A noop (which clients ignore) tells when the connection exists.
            let first = runtime::send_when_established(
                &AppEnv::new(app),
                &id,
                crate::push::NOOP.to_owned(),
                engine_config(app).establish_wait,
            )
            .await;
            if first == runtime::FirstFrame::Sent {
                app.pusher.close(&id).await?;
            }
        }
        Task::Welcome {
            connection_id: id,
            resume_after,
        } => {
            let Some(conn) = connections::get(app, &id).await? else {
                return Ok(report);
            };
            let Some(user) = conn.user() else {
                return Ok(report);
            };
            if conn.live {
                return Ok(report);
            }
            // An empty probe would be visible to the client; wait with the real first frame.
            let start = conn.pid.clone().map(|pid| match resume_after {
                Some(after) => Start::Recovered { pid, after },
                None => Start::New { pid },
            });
            if fanout::go_live(app, &conn, user, true, start.as_ref()).await? {
                report.opened = 1;
            } else {
                connections::remove(app, &id).await?;
            }
        }
        Task::Deliver {
            user,
            not_before_ms,
        } => {
            sleep_until_ms(not_before_ms).await;
            report.delivered = fanout::deliver_pending(app, user, Due::Now).await?;
        }
        Task::Sweep { slots } => return sweep_or_fan_out(app, slots).await,
        Task::PhantomStop {
            from,
            to,
            not_before_ms,
        } => {
            sleep_until_ms(not_before_ms).await;
            if !phantom::really_typing(app, from, to).await? {
                let stop = ServerEvent::Typing(TypingEvent {
                    from,
                    typing: false,
                });
                outbox::push_to_user(app, to, &stop).await?;
            }
        }
    }
    Ok(report)
}

/// The scheduled sweep: every connection in this invocation while there are at most
/// `SWEEP_SHARD_MAX`; beyond that, shards of the slot space, one asynchronous invocation
/// each (see [`sweep_or_fan_out`]).
pub async fn sweep_all(app: &App) -> Result<Report> {
    sweep_or_fan_out(app, SlotRange::ALL).await
}

/// Sweeps the connections in `slots` here if they are at most `SWEEP_SHARD_MAX`, or hands
/// them to enough shards (a power of two of equal slot ranges, so ranges nest) that each
/// holds about that many; a shard still too big (slots are hashes, so shares vary) splits
/// again. So no invocation handles more than the bound, whatever the number of
/// connections, and the fan-out is one level deep while connections are spread evenly.
pub async fn sweep_or_fan_out(app: &App, slots: SlotRange) -> Result<Report> {
    let max = app.config.sweep_shard_max;
    let count = connections::count_in(app, slots).await?;
    if count <= max || slots.hi() - slots.lo() < 2 {
        return sweep(app, slots).await;
    }
    let n = u32::try_from(count.div_ceil(max).next_power_of_two()).unwrap_or(u32::MAX);
    let mut report = Report::default();
    for shard in slots.split(n) {
        match app
            .invoker
            .invoke_async(&Task::Sweep { slots: shard })
            .await
        {
            Ok(()) => report.shards += 1,
            Err(e) => {
                tracing::warn!(error = %e, %shard, "could not hand a sweep shard on; the next sweep covers it")
            }
        }
    }
    tracing::debug!(%slots, count, shards = report.shards, "sweep fanned out");
    Ok(report)
}

/// Sweeps the connections in `slots`: heartbeats, ended login sessions, overdue messages
/// and phantom typing for the users this range looks after.
pub async fn sweep(app: &App, slots: SlotRange) -> Result<Report> {
    let started = std::time::Instant::now();
    let mut report = Report::default();
    heartbeat(app, slots, &mut report).await?;
    let mut expired = connections::in_slots(slots);
    expired.insert(
        "session_expires_at",
        doc! { "$lte": time::to_bson(time::now()) },
    );
    report.ended += outbox::end_connections(app, expired).await?;
    let users = owned_users(app, slots).await?;
    report.delivered += deliver_overdue(app, &users).await?;
    report.phantoms += phantom_typing(app, &users).await?;
    if report != Report::default() {
        tracing::debug!(%slots, ?report, elapsed_ms = started.elapsed().as_millis() as u64, "sweep");
    }
    Ok(report)
}

async fn heartbeat(app: &App, slots: SlotRange, report: &mut Report) -> Result<()> {
    // Sweeps may overlap (a schedule does not wait for the previous run): only one at a time
    // decides who in a range is due a ping, or a client gets two in a row.
    let key = if slots.is_all() {
        "sweep:heartbeat".to_owned()
    } else {
        format!("sweep:heartbeat:{slots}")
    };
    let lease = match app
        .store
        .acquire(&key, Duration::from_secs(10), Duration::ZERO)
        .await
    {
        Ok(lease) => lease,
        Err(Error::Store(StoreError::LockTimeout(_))) => return Ok(()),
        Err(e) => return Err(e),
    };
    // A shard slowed past the lease's ttl (a loaded database) keeps it while it runs.
    let keep = app.store.keep_alive(&lease);
    let beat = runtime::heartbeat(&AppEnv::sweeping(app, slots), &engine_config(app)).await;
    drop(keep);
    app.store.release(lease, Handback::default()).await;
    let beat = beat?;
    report.pinged += beat.pinged;
    report.dropped += beat.dropped;
    Ok(())
}

/// A user a sweep looks after, with their live connections.
struct Owned {
    user: UserId,
    conns: Vec<ConnectionDoc>,
}

/// The users the range `slots` looks after: those with a live connection whose lowest slot
/// is in it, so a user whose devices are in several shards is swept once.
async fn owned_users(app: &App, slots: SlotRange) -> Result<Vec<Owned>> {
    const USERS_PER_QUERY: usize = 500;
    let mut filter = connections::in_slots(slots);
    filter.insert("live", true);
    filter.insert("user_id", doc! { "$ne": bson::Bson::Null });
    let here = connections::matching(app, filter).await?;
    let mut users: Vec<UserId> = here.iter().filter_map(ConnectionDoc::user).collect();
    users.sort();
    users.dedup();
    let conns = if slots.is_all() {
        here
    } else {
        let mut all = Vec::with_capacity(here.len());
        for page in users.chunks(USERS_PER_QUERY) {
            all.extend(connections::of_users(app, page).await?);
        }
        all
    };
    let mut by_user: std::collections::BTreeMap<UserId, Vec<ConnectionDoc>> =
        std::collections::BTreeMap::new();
    for c in conns {
        if let Some(user) = c.user() {
            by_user.entry(user).or_default().push(c);
        }
    }
    let slot = |c: &ConnectionDoc| c.slot.and_then(|s| u32::try_from(s).ok()).unwrap_or(0);
    Ok(by_user
        .into_iter()
        .filter(|(_, conns)| {
            conns
                .iter()
                .map(slot)
                .min()
                .is_some_and(|lowest| slots.contains(lowest))
        })
        .map(|(user, conns)| Owned { user, conns })
        .collect())
}

/// Undelivered messages whose time has come (with a grace, so deliveries in flight are not
/// repeated), for the online users a sweep looks after (never starved by offline backlogs,
/// which wait for their recipient's connect): ask which of a page have overdue messages,
/// and deliver to each; one recipient's failure does not stop the others.
async fn deliver_overdue(app: &App, users: &[Owned]) -> Result<usize> {
    const USERS_PER_PAGE: usize = 500;
    let overdue =
        time::to_bson(time::now() - chrono::TimeDelta::from_std(OVERDUE_GRACE).unwrap_or_default());
    let mut delivered = 0;
    for page in users.chunks(USERS_PER_PAGE) {
        let ids: Vec<bson::oid::ObjectId> = page.iter().map(|o| o.user.object_id()).collect();
        let waiting = app
            .store
            .messages
            .distinct(
                "to",
                doc! {
                    "to": { "$in": ids },
                    "delivered_at": bson::Bson::Null,
                    "deliver_after": { "$lte": overdue },
                },
            )
            .await?;
        for user in waiting
            .iter()
            .filter_map(|v| v.as_object_id().map(UserId::from_object_id))
        {
            match fanout::deliver_pending_within(app, user, Due::Now, Duration::ZERO).await {
                Ok(n) => delivered += n,
                Err(crate::Error::Store(crate::error::StoreError::LockTimeout(_))) => {}
                Err(e) => {
                    tracing::warn!(error = %e, %user, "sweep could not deliver; next sweep retries")
                }
            }
        }
    }
    Ok(delivered)
}

/// Phantom typing: maybe show each user a sweep looks after a recent partner typing.
async fn phantom_typing(app: &App, users: &[Owned]) -> Result<usize> {
    let x = app.experiments.config();
    if !x.enabled || !x.phantom_typing_enabled {
        return Ok(0);
    }
    let mut shown = 0;
    for Owned { user, conns } in users {
        let user = *user;
        let partners = phantom::recent_partners(app, user, 5).await?;
        let mut candidates = Vec::new();
        for p in partners {
            if !phantom::really_typing(app, p, user).await? {
                candidates.push(p);
            }
        }
        let Some(&from) = app.experiments.phantom_typing(&candidates) else {
            continue;
        };
        let start = ServerEvent::Typing(TypingEvent { from, typing: true });
        if outbox::push(app, user, conns, &start).await.is_empty() {
            continue;
        }
        shown += 1;
        let stop = Task::PhantomStop {
            from,
            to: user,
            not_before_ms: time::now().timestamp_millis()
                + x.phantom_typing_duration.as_millis() as i64,
        };
        if let Err(e) = app.invoker.invoke_async(&stop).await {
            tracing::warn!(error = %e, "could not queue the end of a phantom typing indicator");
        }
    }
    Ok(shown)
}
