//! The scheduled invoker: one function, two ways in.
//!
//! - Asynchronous tasks from other functions ([`Task`]): post the Engine.IO open packet once
//!   a new connection exists (`$connect` cannot post to itself), welcome a plain-JSON client,
//!   deliver a message after its latency-illusion delay, end a phantom typing indicator.
//! - The schedule (EventBridge, every minute in AWS; a timer locally): the sweep pings
//!   Socket.IO connections, drops silent ones and ones that never sent CONNECT, delivers
//!   overdue messages to connected recipients, and runs phantom typing.

use std::time::Duration;

use bson::doc;
use futures::TryStreamExt;
use serde::Serialize;
use serde_json::Value;

use crate::api::TypingEvent;
use crate::app::App;
use crate::domain::UserId;
use crate::error::{Error, InputError, Result, StoreError};
use crate::realtime::events::ServerEvent;
use crate::realtime::fanout::{self, Due};
use crate::realtime::recovery::Start;
use crate::realtime::sio_env::{AppEnv, engine_config};
use crate::realtime::{connections, outbox, phantom};
use crate::socketio::runtime;
use crate::store::ConnectionDoc;
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
        return sweep(app).await;
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

/// The periodic sweep.
pub async fn sweep(app: &App) -> Result<Report> {
    let mut report = Report::default();
    heartbeat(app, &mut report).await?;
    report.ended += outbox::end_connections(
        app,
        doc! { "session_expires_at": { "$lte": time::to_bson(time::now()) } },
    )
    .await?;
    report.delivered += deliver_overdue(app).await?;
    report.phantoms += phantom_typing(app).await?;
    if report != Report::default() {
        tracing::debug!(?report, "sweep");
    }
    Ok(report)
}

async fn heartbeat(app: &App, report: &mut Report) -> Result<()> {
    // Sweeps may overlap (a schedule does not wait for the previous run): only one at a time
    // decides who is due a ping, or a client gets two in a row.
    let lease = match app
        .store
        .acquire("sweep:heartbeat", Duration::from_secs(10), Duration::ZERO)
        .await
    {
        Ok(lease) => lease,
        Err(Error::Store(StoreError::LockTimeout(_))) => return Ok(()),
        Err(e) => return Err(e),
    };
    let beat = runtime::heartbeat(&AppEnv::new(app), &engine_config(app)).await;
    app.store.release(lease, None).await;
    let beat = beat?;
    report.pinged += beat.pinged;
    report.dropped += beat.dropped;
    Ok(())
}

/// Undelivered messages whose time has come (with a grace, so deliveries in flight are not
/// repeated), for recipients who are online: page through every online user (never
/// starved by offline backlogs, which wait for their recipient's connect), ask which of a
/// page have overdue messages, and deliver to each; one recipient's failure does not stop
/// the others.
async fn deliver_overdue(app: &App) -> Result<usize> {
    const USERS_PER_PAGE: usize = 500;
    let overdue =
        time::to_bson(time::now() - chrono::TimeDelta::from_std(OVERDUE_GRACE).unwrap_or_default());
    let mut online: Vec<UserId> = app
        .store
        .connections
        .distinct(
            "user_id",
            doc! { "live": true, "user_id": { "$ne": bson::Bson::Null } },
        )
        .await?
        .iter()
        .filter_map(|v| v.as_object_id().map(UserId::from_object_id))
        .collect();
    online.sort();
    online.dedup();
    let mut delivered = 0;
    for page in online.chunks(USERS_PER_PAGE) {
        let ids: Vec<bson::oid::ObjectId> = page.iter().map(UserId::object_id).collect();
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

/// Phantom typing: maybe show each connected user a recent partner typing.
async fn phantom_typing(app: &App) -> Result<usize> {
    let x = app.experiments.config();
    if !x.enabled || !x.phantom_typing_enabled {
        return Ok(0);
    }
    let conns: Vec<ConnectionDoc> = app
        .store
        .connections
        .find(doc! { "user_id": { "$ne": bson::Bson::Null }, "live": true })
        .await?
        .try_collect()
        .await?;
    let mut users: Vec<UserId> = conns.iter().filter_map(ConnectionDoc::user).collect();
    users.sort();
    users.dedup();
    let mut shown = 0;
    for user in users {
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
        let user_conns: Vec<ConnectionDoc> = conns
            .iter()
            .filter(|c| c.user() == Some(user))
            .cloned()
            .collect();
        if outbox::push(app, user, &user_conns, &start)
            .await
            .is_empty()
        {
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
