//! An in-memory [`Env`]: sessions in a map, the outbox a list of frames per connection,
//! deferred opens a queue, and a clock the test moves. With it the whole protocol runtime
//! runs in unit tests and fuzz targets, without a database, a gateway or an AWS SDK.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use super::runtime::{Env, Joined, Partial, SendError, SessionState, Sid};
use crate::domain::ConnectionId;

/// What the server sent to a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    Text(String),
    Binary(Vec<u8>),
    Close,
}

#[derive(Debug, thiserror::Error)]
#[error("in-memory environment: {0}")]
pub struct MemoryError(pub String);

/// The in-memory world. Connections exist (can be sent to) once [`MemoryEnv::establish`]
/// is called for them, like API Gateway after `$connect` returned.
#[derive(Debug, Default)]
pub struct MemoryEnv {
    sessions: Mutex<HashMap<ConnectionId, SessionState>>,
    established: Mutex<HashSet<ConnectionId>>,
    outbox: Mutex<HashMap<ConnectionId, Vec<Out>>>,
    opens: Mutex<Vec<ConnectionId>>,
    acks: Mutex<HashMap<ConnectionId, i64>>,
    now: AtomicI64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MemoryEnv {
    pub fn new(now_ms: i64) -> Self {
        let env = Self::default();
        env.now.store(now_ms, Ordering::SeqCst);
        env
    }

    /// The connection now exists (the handshake returned).
    pub fn establish(&self, id: &ConnectionId) {
        lock(&self.established).insert(id.clone());
    }

    /// Moves the clock.
    pub fn advance(&self, ms: i64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    /// Takes what was sent to `id` so far.
    pub fn take(&self, id: &ConnectionId) -> Vec<Out> {
        lock(&self.outbox).remove(id).unwrap_or_default()
    }

    /// The connections whose open packet is due (and forgets them).
    pub fn take_opens(&self) -> Vec<ConnectionId> {
        std::mem::take(&mut *lock(&self.opens))
    }

    pub fn session(&self, id: &ConnectionId) -> Option<SessionState> {
        lock(&self.sessions).get(id).cloned()
    }

    fn update(&self, id: &ConnectionId, f: impl FnOnce(&mut SessionState)) -> bool {
        match lock(&self.sessions).get_mut(id) {
            Some(s) => {
                f(s);
                true
            }
            None => false,
        }
    }

    fn push(&self, id: &ConnectionId, out: Out) -> Result<(), SendError> {
        if !lock(&self.established).contains(id) {
            return Err(SendError::Gone);
        }
        lock(&self.outbox).entry(id.clone()).or_default().push(out);
        Ok(())
    }
}

impl Env for MemoryEnv {
    type Error = MemoryError;

    async fn create(&self, id: &ConnectionId, eio_sid: Sid) -> Result<(), MemoryError> {
        let now = self.now_ms();
        lock(&self.sessions).insert(
            id.clone(),
            SessionState {
                eio_sid,
                socket_io: true,
                connected_at_ms: now,
                last_seen_ms: now,
                ..SessionState::default()
            },
        );
        Ok(())
    }

    async fn claim_open(&self, id: &ConnectionId) -> Result<Option<SessionState>, MemoryError> {
        let now = self.now_ms();
        let mut sessions = lock(&self.sessions);
        match sessions.get_mut(id) {
            Some(s) if !s.opened => {
                s.opened = true;
                s.last_ping_ms = Some(now);
                s.last_seen_ms = now;
                Ok(Some(s.clone()))
            }
            _ => Ok(None),
        }
    }

    async fn join(
        &self,
        id: &ConnectionId,
        joined: &Joined,
        principal: Option<&str>,
    ) -> Result<bool, MemoryError> {
        Ok(self.update(id, |s| {
            s.namespaces.retain(|j| j.ns != joined.ns);
            s.namespaces.push(joined.clone());
            s.joined_once = true;
            if let Some(p) = principal {
                s.principal = Some(p.to_owned());
            }
        }))
    }

    async fn leave(&self, id: &ConnectionId, ns: &str) -> Result<(), MemoryError> {
        self.update(id, |s| {
            s.namespaces.retain(|j| j.ns != ns);
            if ns == "/" {
                s.principal = None;
            }
        });
        Ok(())
    }

    async fn forget(&self, id: &ConnectionId) -> Result<(), MemoryError> {
        lock(&self.sessions).remove(id);
        Ok(())
    }

    async fn touch(&self, id: &ConnectionId) -> Result<(), MemoryError> {
        let now = self.now_ms();
        self.update(id, |s| s.last_seen_ms = now);
        Ok(())
    }

    async fn set_partial(
        &self,
        id: &ConnectionId,
        partial: Option<&Partial>,
    ) -> Result<(), MemoryError> {
        self.update(id, |s| s.partial = partial.cloned());
        Ok(())
    }

    async fn next_ack_id(&self, id: &ConnectionId) -> Result<i64, MemoryError> {
        let mut acks = lock(&self.acks);
        let n = acks.entry(id.clone()).or_insert(0);
        *n += 1;
        Ok(*n)
    }

    async fn engine_sessions(&self) -> Result<Vec<(ConnectionId, SessionState)>, MemoryError> {
        Ok(lock(&self.sessions)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn pinged(&self, ids: &[ConnectionId], at_ms: i64) -> Result<(), MemoryError> {
        for id in ids {
            self.update(id, |s| s.last_ping_ms = Some(at_ms));
        }
        Ok(())
    }

    async fn send(&self, id: &ConnectionId, frame: String) -> Result<(), SendError> {
        self.push(id, Out::Text(frame))
    }

    async fn send_binary(&self, id: &ConnectionId, bytes: Vec<u8>) -> Result<(), SendError> {
        self.push(id, Out::Binary(bytes))
    }

    async fn close(&self, id: &ConnectionId) -> Result<(), SendError> {
        self.push(id, Out::Close)?;
        lock(&self.established).remove(id);
        Ok(())
    }

    async fn open_later(&self, id: &ConnectionId) -> Result<(), MemoryError> {
        lock(&self.opens).push(id.clone());
        Ok(())
    }

    fn now_ms(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
}
