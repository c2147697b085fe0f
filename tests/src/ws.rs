//! Asserting conveniences over the shared client (`test_client`): a test that gets something
//! other than what it waits for fails with what it got.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::Value;
pub use test_client::{Frame, RawWs, Socket};

pub const WAIT: Duration = Duration::from_secs(5);

/// Panicking forms of [`RawWs`]'s calls, for frame-level tests.
#[allow(async_fn_in_trait)]
pub trait RawWsExt {
    async fn send(&mut self, text: &str);
    /// The next text frame; panics on anything else.
    async fn text(&mut self, within: Duration) -> String;
    /// Waits for the connection to close; returns the close code.
    async fn closed(&mut self, within: Duration) -> Option<u16>;
}

impl RawWsExt for RawWs {
    async fn send(&mut self, text: &str) {
        self.send_text(text).await.unwrap();
    }

    async fn text(&mut self, within: Duration) -> String {
        match self.next(within).await {
            Frame::Text(t) => t,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    async fn closed(&mut self, within: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match self.next_until(deadline).await {
                Frame::Close(code) => return code,
                Frame::Ended => return None,
                Frame::Timeout => panic!("connection still open after {within:?}"),
                _ => continue,
            }
        }
    }
}

/// A Socket.IO client whose calls assert instead of returning errors.
pub struct RawSio(pub Socket);

impl std::ops::Deref for RawSio {
    type Target = Socket;
    fn deref(&self) -> &Socket {
        &self.0
    }
}

impl std::ops::DerefMut for RawSio {
    fn deref_mut(&mut self) -> &mut Socket {
        &mut self.0
    }
}

fn endpoint(base_ws: &str) -> String {
    format!("{base_ws}/socket.io/")
}

impl RawSio {
    /// Connects and reads the Engine.IO open packet.
    pub async fn open(base_ws: &str) -> RawSio {
        RawSio(Socket::open(&endpoint(base_ws), WAIT).await.unwrap())
    }

    /// Opens and sends CONNECT with `auth: {token}`; returns the CONNECT answer frame.
    pub async fn connect(base_ws: &str, token: &str) -> (RawSio, String) {
        let (s, answer) = Socket::connect(&endpoint(base_ws), token, WAIT)
            .await
            .unwrap();
        (RawSio(s), answer)
    }

    /// Connects, expects `40{sid}` and the welcome; returns the client and the welcome.
    pub async fn login(base_ws: &str, token: &str) -> (RawSio, Value) {
        let (mut s, answer) = Self::connect(base_ws, token).await;
        assert!(answer.starts_with("40{"), "CONNECT refused: {answer}");
        let (name, welcome) = s.event().await;
        assert_eq!(name, "system");
        assert_eq!(welcome["type"], "welcome");
        (s, welcome)
    }

    /// The next frame that is not an Engine.IO ping (pings are answered).
    pub async fn frame(&mut self) -> String {
        self.0.frame(WAIT).await.unwrap()
    }

    /// The next Socket.IO event on `/`: (name, first argument).
    pub async fn event(&mut self) -> (String, Value) {
        let (name, mut args) = self.0.event(WAIT).await.unwrap();
        let first = if args.is_empty() {
            Value::Null
        } else {
            args.swap_remove(0)
        };
        (name, first)
    }

    /// Waits for the named event, skipping others.
    pub async fn wait_event(&mut self, name: &str) -> Value {
        self.0
            .wait_event(name, WAIT * 2)
            .await
            .unwrap_or_else(|e| panic!("no `{name}` event: {e}"))
    }

    pub async fn emit(&mut self, name: &str, data: Value) {
        self.0.emit(name, &data).await.unwrap();
    }

    /// Emits `name` asking for an ack and returns the ack's arguments (skipping other
    /// frames). Waiting for it orders what follows after it: the gateway, like API Gateway,
    /// may run one connection's frames concurrently.
    pub async fn emit_ack(&mut self, name: &str, data: Value) -> Vec<Value> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let frame = format!("42{id}{}", serde_json::json!([name, data]));
        self.0.send(&frame).await.unwrap();
        let prefix = format!("43{id}");
        loop {
            let f = self.frame().await;
            if let Some(body) = f.strip_prefix(&prefix) {
                return serde_json::from_str(body).unwrap();
            }
        }
    }
}
