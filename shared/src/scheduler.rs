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
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::TypingEvent;
use crate::app::App;
use crate::domain::{ConnectionId, UserId};
use crate::error::{InputError, Result};
use crate::realtime::events::ServerEvent;
use crate::realtime::fanout::{self, Due};
use crate::realtime::{connections, phantom};
use crate::socketio;
use crate::store::{ConnectionDoc, Protocol};
use crate::time;

/// A task handed to the scheduler by asynchronous invoke.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum Task {
    /// Post the Engine.IO open packet to a new Socket.IO connection.
    Open { connection_id: ConnectionId },
    /// Welcome a new plain-JSON connection and deliver what waited for it.
    Welcome { connection_id: ConnectionId },
    /// Deliver `user`'s messages that are due at `not_before_ms` (epoch milliseconds).
    Deliver { user: UserId, not_before_ms: i64 },
    /// End a phantom typing indicator.
    PhantomStop {
        from: UserId,
        to: UserId,
        not_before_ms: i64,
    },
}

/// What one invocation did (returned to the invoker and logged).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub opened: usize,
    pub pinged: usize,
    pub dropped: usize,
    pub delivered: usize,
    pub phantoms: usize,
}

use crate::realtime::fanout::ESTABLISH_WAIT;
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
            let Some(conn) = connections::get(app, &id).await? else {
                return Ok(report);
            };
            if conn.opened {
                return Ok(report);
            }
            let ws = &app.config.ws;
            let open = socketio::open_packet(
                conn.eio_sid.as_deref().unwrap_or_default(),
                ws.ping_interval.as_millis() as u64,
                ws.ping_timeout.as_millis() as u64,
                u64::from(ws.max_payload),
            );
            // Claim the open first, so a concurrent retry of this task posts nothing.
            let now = time::to_bson(time::now());
            let claimed = app
                .store
                .connections
                .update_one(
                    doc! { "_id": id.as_str(), "opened": false },
                    doc! { "$set": { "opened": true, "last_ping": now, "last_seen": now } },
                )
                .await?;
            if claimed.modified_count == 0 {
                return Ok(report);
            }
            if fanout::post_when_established(app, &id, open).await {
                report.opened = 1;
            } else {
                connections::remove(app, &id).await?;
            }
        }
        Task::Welcome { connection_id: id } => {
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
            if fanout::go_live(app, &id, Protocol::Json, user, true).await? {
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
                fanout::push_to_users(app, &[to], &stop).await?;
            }
        }
    }
    Ok(report)
}

/// The periodic sweep.
pub async fn sweep(app: &App) -> Result<Report> {
    let mut report = Report::default();
    heartbeat(app, &mut report).await?;
    report.delivered += deliver_overdue(app).await?;
    report.phantoms += phantom_typing(app).await?;
    if report != Report::default() {
        tracing::debug!(?report, "sweep");
    }
    Ok(report)
}

async fn heartbeat(app: &App, report: &mut Report) -> Result<()> {
    let ws = &app.config.ws;
    let now = time::now();
    let millis = |t: bson::DateTime| now.timestamp_millis() - t.timestamp_millis();
    let silent_limit = (ws.ping_interval + ws.ping_timeout).as_millis() as i64;
    let interval = ws.ping_interval.as_millis() as i64;
    let conns = connections::speaking(app, &[Protocol::SocketIo, Protocol::Engine]).await?;
    let mut drop: Vec<ConnectionId> = Vec::new();
    let mut ping: Vec<ConnectionId> = Vec::new();
    for c in &conns {
        let Some(id) = c.id() else { continue };
        if !c.opened {
            // The open task owns a connection until the open packet went out.
            if millis(c.connected_at) > (ESTABLISH_WAIT.as_millis() as i64) * 2 {
                drop.push(id);
            }
            continue;
        }
        let silent = millis(c.last_seen) > silent_limit;
        // Socket.IO's connect timeout: a session that never joined a namespace in time.
        let never_connected = c.protocol == Protocol::SocketIo
            && !c.joined_once
            && millis(c.connected_at) > ws.connect_timeout.as_millis() as i64;
        if silent || never_connected {
            drop.push(id);
        } else if c.last_ping.is_none_or(|p| millis(p) >= interval) {
            ping.push(id);
        }
    }
    let pinged: Vec<ConnectionId> = join_all(ping.iter().map(|id| async move {
        fanout::post_frame(app, id, socketio::PING.to_owned())
            .await
            .ok()
            .map(|()| id.clone())
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    if !pinged.is_empty() {
        let ids: Vec<&str> = pinged.iter().map(ConnectionId::as_str).collect();
        app.store
            .connections
            .update_many(
                doc! { "_id": { "$in": ids } },
                doc! { "$set": { "last_ping": time::to_bson(now) } },
            )
            .await?;
    }
    report.pinged += pinged.len();
    for id in &drop {
        tracing::info!(connection = %id, "dropping a silent connection");
        let _ = app.pusher.close(id).await;
        connections::remove(app, id).await?;
    }
    report.dropped += drop.len();
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
        if fanout::push(app, &user_conns, &start).await.is_empty() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_round_trip_as_json() {
        let u = UserId::new();
        let t = Task::Deliver {
            user: u,
            not_before_ms: 5,
        };
        let v = serde_json::to_value(&t).expect("json");
        assert_eq!(v["task"], "deliver");
        assert_eq!(serde_json::from_value::<Task>(v).expect("task"), t);
        let open: Task =
            serde_json::from_str(r#"{"task":"open","connection_id":"abc="}"#).expect("open");
        assert_eq!(
            open,
            Task::Open {
                connection_id: ConnectionId::parse("abc=").expect("id")
            }
        );
        // Ids are parsed at the edge: a task naming a malformed connection is refused.
        assert!(serde_json::from_str::<Task>(r#"{"task":"open","connection_id":"a b"}"#).is_err());
    }
}
