//! The application the official engine.io-protocol and socket.io-protocol suites expect, for
//! any [`Env`]: namespaces `/` and `/custom`; `auth` emitted on connect with the handshake's
//! auth payload; `message` echoed as `message-back`; `message-with-ack` acknowledged with
//! its arguments; `emit-with-ack` emitted back asking for an ack, whose arguments are then
//! emitted again; binary attachments included. With `tokens`, a `token` in the auth payload
//! names the principal (`"bad"` is refused), and `whoami` acknowledges with it; without,
//! every client is anonymous (as the suites expect).
//!
//! The runtime's unit tests, the fuzz targets and the conformance server (`make
//! conformance`) all run it.

use serde_json::{Value, json};

use super::codec;
use super::runtime::{self, Ack, Authorized, Env, Event, Session, SocketApp};
use crate::domain::ConnectionId;

#[derive(Debug, Clone, Copy, Default)]
pub struct SuiteApp {
    /// Whether sessions are final once settled (see `SocketApp::sessions_are_final`).
    pub final_sessions: bool,
    /// Whether the auth payload's `token` names the principal.
    pub tokens: bool,
}

impl<E: Env> SocketApp<E> for SuiteApp {
    fn has_namespace(&self, ns: &str) -> bool {
        ns == "/" || ns == "/custom"
    }

    fn accepts_binary(&self) -> bool {
        true
    }

    fn sessions_are_final(&self) -> bool {
        self.final_sessions
    }

    async fn authorize(
        &self,
        _env: &E,
        _id: &ConnectionId,
        _ns: &str,
        auth: Option<&Value>,
    ) -> Result<Authorized, E::Error> {
        if !self.tokens {
            return Ok(Authorized::Anonymous);
        }
        Ok(
            match auth.and_then(|a| a.get("token")).and_then(Value::as_str) {
                Some("bad") => Authorized::Refused("unauthorized".into()),
                Some(user) => Authorized::Principal(user.to_owned()),
                None => Authorized::Anonymous,
            },
        )
    }

    async fn connected(
        &self,
        env: &E,
        session: &Session,
        ns: &str,
        auth: Option<Value>,
    ) -> Result<(), E::Error> {
        let frame = codec::event(ns, "auth", &auth.unwrap_or_else(|| json!({})));
        let _ = env.send(&session.id, frame).await;
        Ok(())
    }

    async fn event(&self, env: &E, session: &Session, e: Event) -> Result<(), E::Error> {
        let (text, bins) = match (e.name.as_str(), e.ack) {
            ("message", _) => {
                codec::binary_event(&e.ns, "message-back", &e.args, &e.attachments, None)
            }
            ("message-with-ack", Some(id)) => codec::binary_ack(&e.ns, id, &e.args, &e.attachments),
            ("emit-with-ack", _) => {
                let id = env.next_ack_id(&session.id).await?;
                codec::binary_event(&e.ns, "emit-with-ack", &e.args, &e.attachments, Some(id))
            }
            ("whoami", Some(id)) => (
                codec::ack(&e.ns, id, &[json!(session.principal)]),
                Vec::new(),
            ),
            _ => return Ok(()),
        };
        runtime::send_with_attachments(env, &session.id, text, bins).await;
        Ok(())
    }

    async fn ack(&self, env: &E, session: &Session, ack: Ack) -> Result<(), E::Error> {
        let (text, bins) =
            codec::binary_event(&ack.ns, "emit-with-ack", &ack.args, &ack.attachments, None);
        runtime::send_with_attachments(env, &session.id, text, bins).await;
        Ok(())
    }
}
