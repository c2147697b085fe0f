//! Raw WebSocket clients for protocol-level tests: frames in, frames out, close codes.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// What arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
    Close(Option<u16>),
    Timeout,
    Ended,
}

pub struct RawWs {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl RawWs {
    pub async fn connect(url: &str) -> Result<RawWs, tokio_tungstenite::tungstenite::Error> {
        let (ws, _) = connect_async(url).await?;
        Ok(RawWs { ws })
    }

    pub async fn send(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    pub async fn send_message(
        &mut self,
        m: Message,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.ws.send(m).await
    }

    /// The next data or close frame (pings/pongs of the WebSocket layer are skipped).
    pub async fn next(&mut self, within: Duration) -> Frame {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let Ok(item) = tokio::time::timeout_at(deadline, self.ws.next()).await else {
                return Frame::Timeout;
            };
            return match item {
                Some(Ok(Message::Text(t))) => Frame::Text(t.to_string()),
                Some(Ok(Message::Binary(b))) => Frame::Binary(b.to_vec()),
                Some(Ok(Message::Close(c))) => Frame::Close(c.map(|c| u16::from(c.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => Frame::Ended,
            };
        }
    }

    /// The next text frame; panics on anything else.
    pub async fn text(&mut self, within: Duration) -> String {
        match self.next(within).await {
            Frame::Text(t) => t,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Waits for the connection to close; returns the close code.
    pub async fn closed(&mut self, within: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match self.next(deadline - tokio::time::Instant::now()).await {
                Frame::Close(code) => return code,
                Frame::Ended => return None,
                Frame::Timeout => panic!("connection still open after {within:?}"),
                _ => continue,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// A bare-bones Socket.IO client over raw frames: enough to test the protocol edge.
pub struct RawSio {
    pub ws: RawWs,
    pub open: Value,
    /// Answer Engine.IO pings automatically.
    pub auto_pong: bool,
}

pub const WAIT: Duration = Duration::from_secs(5);

impl RawSio {
    /// Connects and reads the Engine.IO open packet.
    pub async fn open(base_ws: &str) -> RawSio {
        let mut ws = RawWs::connect(&format!("{base_ws}/socket.io/?EIO=4&transport=websocket"))
            .await
            .unwrap();
        let first = ws.text(WAIT).await;
        assert!(
            first.starts_with('0'),
            "first frame is not an open packet: {first}"
        );
        let open: Value = serde_json::from_str(&first[1..]).unwrap();
        RawSio {
            ws,
            open,
            auto_pong: true,
        }
    }

    /// Opens and sends CONNECT with `auth: {token}`; returns the CONNECT answer frame.
    pub async fn connect(base_ws: &str, token: &str) -> (RawSio, String) {
        let mut s = Self::open(base_ws).await;
        s.ws.send(&format!(r#"40{{"token":"{token}"}}"#)).await;
        let answer = s.frame().await;
        (s, answer)
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
        loop {
            let f = self.ws.text(WAIT).await;
            if f == "2" {
                if self.auto_pong {
                    self.ws.send("3").await;
                }
                continue;
            }
            return f;
        }
    }

    /// The next Socket.IO event on `/`: (name, first argument).
    pub async fn event(&mut self) -> (String, Value) {
        let f = self.frame().await;
        let body = f
            .strip_prefix("42")
            .unwrap_or_else(|| panic!("not an event frame: {f}"));
        let v: Vec<Value> = serde_json::from_str(body).unwrap();
        (
            v[0].as_str().unwrap().to_owned(),
            v.get(1).cloned().unwrap_or(Value::Null),
        )
    }

    /// Waits for the named event, skipping others.
    pub async fn wait_event(&mut self, name: &str) -> Value {
        for _ in 0..50 {
            let (n, v) = self.event().await;
            if n == name {
                return v;
            }
        }
        panic!("no `{name}` event");
    }

    pub async fn emit(&mut self, name: &str, data: Value) {
        self.ws
            .send(&format!("42{}", serde_json::json!([name, data])))
            .await;
    }
}
