//! Connection state recovery: a reconnecting client gets exactly the events it missed.
//!
//! - Every event addressed to a user (all their devices: messages, receipts, typing, unread
//!   counts) is appended to that user's log before it is posted, and gets the log's next
//!   offset (the counter is the head kept on the user's inbox document in `locks`; the
//!   event itself is a `logged_events` document). A send to an online recipient takes the
//!   offset of its `message` with the inbox lease, in the same round trip; an offset so
//!   taken and then not used (the send stored nothing) is logged as a skip, which a replay
//!   steps over, so it leaves no hole.
//!   Connections that track offsets get it with the event: Socket.IO as the event's last
//!   argument (`42["message",{..},"17"]`, what socket.io-client reads), plain JSON as
//!   `"offset"`.
//! - A device's session has a `pid` (`recovery_sessions`): the Socket.IO CONNECT answer
//!   carries it (`40{"sid","pid"}`), as the JSON welcome does. A client that comes back
//!   with that `pid` and the last offset it saw, within `RECOVERY_WINDOW_SECS` of its
//!   connection ending and with a valid token of the same user, gets the same `pid` back
//!   and every event after that offset, in order, then the live ones.
//! - A socket.io-client's first connection cannot get offsets (a client that does not
//!   implement recovery, such as python-socketio, would take the offset for an extra
//!   argument, and the two are indistinguishable before the client has sent a `pid`). For
//!   it the server keeps `end_offset`, the offset its connection ended at (the first event
//!   that could not reach it, or the log's head when it ended), and replays from there.
//!
//! The log keeps the newest `RECOVERY_MAX_EVENTS` events, each for the window; a client
//! further behind gets a new session (the welcome and the undelivered backlog, as always).

use std::time::Duration;

use bson::{doc, oid::ObjectId};
use futures::TryStreamExt;
use serde_json::Value;

use crate::app::App;
use crate::config::MAX_CONNECTION_AGE;
use crate::domain::UserId;
use crate::error::Result;
use crate::realtime::events::ServerEvent;
use crate::store::{LoggedEvent, LoggedEventDoc, RecoveryDoc, inbox_key};
use crate::time;

/// An event from the log, with its offset.
#[derive(Debug, Clone, PartialEq)]
pub struct Replayed {
    pub offset: i64,
    pub name: String,
    pub data: Value,
}

/// Where a device's connection starts: a new session, or the recovery of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    New { pid: String },
    Recovered { pid: String, after: i64 },
}

impl Start {
    pub fn pid(&self) -> &str {
        match self {
            Start::New { pid } | Start::Recovered { pid, .. } => pid,
        }
    }
}

pub fn enabled(app: &App) -> bool {
    !app.config.ws.recovery_window.is_zero()
}

fn window(app: &App) -> chrono::TimeDelta {
    window_of(app.config.ws.recovery_window)
}

fn window_of(d: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}

fn after_now(d: Duration) -> bson::DateTime {
    time::to_bson(time::now() + chrono::TimeDelta::from_std(d).unwrap_or_default())
}

/// Appends `events` to `user`'s log, in order, and returns their offsets (all `None` with
/// recovery off): one `$inc` of the user's log head takes the offsets, one insert stores the
/// events (two round trips for a whole page of messages, neither rewriting older events).
pub async fn append_all(
    app: &App,
    user: UserId,
    events: &[ServerEvent],
) -> Result<Vec<Option<i64>>> {
    append_reserved(app, user, events, Vec::new()).await
}

/// Like [`append_all`], the first events at `reserved` (offsets taken with the user's inbox
/// lease, at most one per event, oldest first): only the rest take new ones.
pub async fn append_reserved(
    app: &App,
    user: UserId,
    events: &[ServerEvent],
    reserved: Vec<i64>,
) -> Result<Vec<Option<i64>>> {
    if !enabled(app) || events.is_empty() {
        return Ok(vec![None; events.len()]);
    }
    let mut offsets = reserved;
    offsets.truncate(events.len());
    let more = events.len() - offsets.len();
    if more > 0 {
        let n = i64::try_from(more).unwrap_or(i64::MAX);
        let head = app.store.advance_counter(&inbox_key(user), n).await?;
        // The last event has the new head; the others count back from it.
        offsets.extend(head - more as i64 + 1..=head);
    }
    let docs = logged(
        window(app),
        user,
        events.iter().map(|e| (e.name(), e.data().to_string())),
        &offsets,
    );
    app.store.logged_events.insert_many(docs).await?;
    Ok(offsets.into_iter().map(Some).collect())
}

/// The name a skipped offset is logged under (never an event's).
const SKIPPED: &str = "";

/// The log entries for `offsets` of `user`'s log that were taken and will not be used, kept
/// for `window` (the recovery window): a replay steps over them (insert them into
/// `logged_events`).
pub fn skipped(window: Duration, user: UserId, offsets: &[i64]) -> Vec<LoggedEventDoc> {
    let events = offsets.iter().map(|_| (SKIPPED, "null".to_owned()));
    logged(window_of(window), user, events, offsets)
}

/// `events` (name, JSON payload) as log entries at `offsets`, kept for the window.
fn logged<'a>(
    window: chrono::TimeDelta,
    user: UserId,
    events: impl Iterator<Item = (&'a str, String)>,
    offsets: &[i64],
) -> Vec<LoggedEventDoc> {
    let at = time::now();
    let expires_at = time::to_bson(
        at.checked_add_signed(window)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC),
    );
    events
        .zip(offsets)
        .map(|((n, d), offset)| LoggedEventDoc {
            user: user.object_id(),
            offset: *offset,
            event: LoggedEvent {
                n: n.to_owned(),
                d,
                at: time::to_bson(at),
            },
            expires_at,
        })
        .collect()
}

/// The newest offset of `user`'s log (0 before the first event).
pub async fn head(app: &App, user: UserId) -> Result<i64> {
    app.store.counter(&inbox_key(user)).await
}

/// How long a replay waits for events whose offsets are taken but whose insert has not
/// landed yet (a concurrent append is between its two round trips).
const WAIT_FOR_APPENDS: Duration = Duration::from_millis(500);

/// Every event after offset `after`, oldest first; `None` when the log no longer reaches
/// back that far (more than `RECOVERY_MAX_EVENTS` behind, or older than the window) or
/// `after` is not one of its offsets.
pub async fn since(app: &App, user: UserId, after: i64) -> Result<Option<Vec<Replayed>>> {
    let head = head(app, user).await?;
    let max = i64::from(app.config.ws.recovery_max_events);
    if after < 0 || after > head || head - after > max {
        return Ok(None);
    }
    let expected = usize::try_from(head - after).unwrap_or(usize::MAX);
    let deadline = tokio::time::Instant::now() + WAIT_FOR_APPENDS;
    loop {
        let found: Vec<LoggedEventDoc> = app
            .store
            .logged_events
            .find(doc! {
                "user": user.object_id(),
                "offset": { "$gt": after, "$lte": head },
            })
            .sort(doc! { "offset": 1 })
            .await?
            .try_collect()
            .await?;
        if found.len() >= expected || tokio::time::Instant::now() >= deadline {
            return Ok(replay_from(after, &found, time::now() - window(app)));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The replay of `found` (events after `after`, by offset): `None` when the first one is
/// gone (forgotten after the window) or older than the window. A gap further on is an
/// append that never completed: nothing was posted for it, so nothing is missing. Skipped
/// offsets count as present and are not replayed.
fn replay_from(
    after: i64,
    found: &[LoggedEventDoc],
    oldest_kept: time::Timestamp,
) -> Option<Vec<Replayed>> {
    if let Some(first) = found.first()
        && (first.offset != after + 1 || time::from_bson(first.event.at) < oldest_kept)
    {
        return None;
    }
    Some(
        found
            .iter()
            .filter(|e| e.event.n != SKIPPED)
            .map(|e| Replayed {
                offset: e.offset,
                name: e.event.n.clone(),
                data: serde_json::from_str(&e.event.d).unwrap_or(Value::Null),
            })
            .collect(),
    )
}

/// A client's claim to a session: its `pid` and, if it saw any, the last offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub pid: String,
    pub offset: Option<i64>,
}

impl Claim {
    /// From a Socket.IO CONNECT payload (`{"pid","offset"}` beside the token).
    pub fn from_auth(auth: Option<&Value>) -> Option<Claim> {
        let auth = auth?;
        let pid = auth.get("pid")?.as_str()?;
        let offset = auth.get("offset").and_then(Value::as_str);
        Self::parse(pid, offset)
    }

    /// From a plain-JSON `?resume=<pid>:<offset>` (the offset may be empty).
    pub fn from_resume(resume: &str) -> Option<Claim> {
        let (pid, offset) = resume.split_once(':').unwrap_or((resume, ""));
        Self::parse(pid, (!offset.is_empty()).then_some(offset))
    }

    fn parse(pid: &str, offset: Option<&str>) -> Option<Claim> {
        let ok =
            !pid.is_empty() && pid.len() <= 64 && pid.bytes().all(|b| b.is_ascii_alphanumeric());
        if !ok {
            return None;
        }
        // An offset that is not one of ours cannot be recovered from: a new session.
        let offset = match offset {
            Some(o) => Some(o.parse::<i64>().ok().filter(|o| *o >= 0)?),
            None => None,
        };
        Some(Claim {
            pid: pid.to_owned(),
            offset,
        })
    }
}

/// Decides where a device of `user` starts: the claimed session if it can be recovered
/// (same user, within the window, the log reaching back to its offset), else a new one.
/// `None` with recovery off.
pub async fn start(app: &App, user: UserId, claim: Option<&Claim>) -> Result<Option<Start>> {
    if !enabled(app) {
        return Ok(None);
    }
    if let Some(claim) = claim
        && let Some(after) = recoverable(app, user, claim).await?
    {
        app.store
            .recovery_sessions
            .update_one(
                doc! { "_id": &claim.pid },
                doc! { "$set": { "expires_at": after_now(MAX_CONNECTION_AGE + app.config.ws.recovery_window) } },
            )
            .await?;
        return Ok(Some(Start::Recovered {
            pid: claim.pid.clone(),
            after,
        }));
    }
    let pid = ObjectId::new().to_hex();
    app.store
        .recovery_sessions
        .insert_one(RecoveryDoc {
            pid: pid.clone(),
            user_id: user.object_id(),
            end_offset: None,
            expires_at: after_now(MAX_CONNECTION_AGE + app.config.ws.recovery_window),
        })
        .await?;
    Ok(Some(Start::New { pid }))
}

/// The offset to replay after, if `claim` can be recovered.
async fn recoverable(app: &App, user: UserId, claim: &Claim) -> Result<Option<i64>> {
    let session = app
        .store
        .recovery_sessions
        .find_one(doc! {
            "_id": &claim.pid,
            "user_id": user.object_id(),
            "expires_at": { "$gt": time::to_bson(time::now()) },
        })
        .await?;
    let Some(session) = session else {
        return Ok(None);
    };
    let Some(after) = claim.offset.or(session.end_offset) else {
        return Ok(None);
    };
    Ok(since(app, user, after).await?.map(|_| after))
}

/// Where a claimed (and already granted) session resumes: the client's offset, or where
/// its last connection ended.
pub async fn resume_point(app: &App, claim: &Claim) -> Result<Option<i64>> {
    if claim.offset.is_some() {
        return Ok(claim.offset);
    }
    Ok(app
        .store
        .recovery_sessions
        .find_one(doc! { "_id": &claim.pid })
        .await?
        .and_then(|s| s.end_offset))
}

/// A connection of session `pid` ended, or could not be sent offset `failed`: the client
/// has seen nothing after `end` (the smallest such offset wins), and the session can be
/// recovered for the window from now.
pub async fn ended(app: &App, pid: &str, end: i64) -> Result<()> {
    app.store
        .recovery_sessions
        .update_one(
            doc! { "_id": pid },
            doc! {
                "$min": { "end_offset": end },
                "$set": { "expires_at": after_now(app.config.ws.recovery_window) },
            },
        )
        .await?;
    Ok(())
}

/// A recovered session's replay is done: what its old connection ended at no longer matters.
pub async fn resumed(app: &App, pid: &str) -> Result<()> {
    app.store
        .recovery_sessions
        .update_one(doc! { "_id": pid }, doc! { "$unset": { "end_offset": "" } })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(offsets: std::ops::RangeInclusive<i64>, age_secs: i64) -> Vec<LoggedEventDoc> {
        let at = time::to_bson(time::now() - chrono::TimeDelta::seconds(age_secs));
        offsets
            .map(|o| LoggedEventDoc {
                user: ObjectId::new(),
                offset: o,
                event: LoggedEvent {
                    n: format!("e{o}"),
                    d: format!("{{\"i\":{o}}}"),
                    at,
                },
                expires_at: at,
            })
            .collect()
    }

    #[test]
    fn a_replay_starts_right_after_the_claimed_offset() {
        let cutoff = time::now() - chrono::TimeDelta::hours(1);
        let after_8 = replay_from(8, &events(9..=10, 0), cutoff).unwrap();
        assert_eq!(
            after_8.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![9, 10]
        );
        assert_eq!(after_8[0].name, "e9");
        assert_eq!(after_8[0].data["i"], 9);
        assert_eq!(replay_from(10, &[], cutoff).unwrap(), vec![]);
        // The event right after the claim is gone (forgotten): not recoverable.
        assert_eq!(replay_from(7, &events(9..=10, 0), cutoff), None);
    }

    #[test]
    fn skipped_offsets_count_as_present_and_are_not_replayed() {
        let cutoff = time::now() - chrono::TimeDelta::hours(1);
        let user = UserId::from_object_id(ObjectId::new());
        let mut found = skipped(Duration::from_secs(60), user, &[9]);
        found.extend(events(10..=10, 0));
        let replay = replay_from(8, &found, cutoff).expect("recoverable over a skip");
        assert_eq!(
            replay.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![10]
        );
        // Without the skip, offset 9 is a hole: a new session.
        assert_eq!(replay_from(8, &found[1..], cutoff), None);
    }

    #[test]
    fn events_older_than_the_window_cannot_be_replayed() {
        let cutoff = time::now() - chrono::TimeDelta::hours(1);
        assert_eq!(replay_from(1, &events(2..=3, 7200), cutoff), None);
        assert_eq!(replay_from(3, &[], cutoff).unwrap(), vec![]);
    }

    #[test]
    fn claims_parse_from_auth_and_resume() {
        let auth = serde_json::json!({ "token": "t", "pid": "abc123", "offset": "42" });
        assert_eq!(
            Claim::from_auth(Some(&auth)),
            Some(Claim {
                pid: "abc123".into(),
                offset: Some(42)
            })
        );
        let no_offset = serde_json::json!({ "pid": "abc123" });
        assert_eq!(Claim::from_auth(Some(&no_offset)).unwrap().offset, None);
        for bad in [
            serde_json::json!({ "pid": "" }),
            serde_json::json!({ "pid": "a b" }),
            serde_json::json!({ "pid": 7 }),
            serde_json::json!({ "pid": "abc", "offset": "x" }),
            serde_json::json!({ "pid": "abc", "offset": "-3" }),
            serde_json::json!({ "token": "t" }),
        ] {
            assert_eq!(Claim::from_auth(Some(&bad)), None, "{bad}");
        }
        assert_eq!(
            Claim::from_resume("abc:7"),
            Some(Claim {
                pid: "abc".into(),
                offset: Some(7)
            })
        );
        assert_eq!(Claim::from_resume("abc:").unwrap().offset, None);
        assert_eq!(Claim::from_resume("abc").unwrap().offset, None);
        assert_eq!(Claim::from_resume(":7"), None);
    }
}
