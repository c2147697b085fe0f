//! WebSocket frames and a Socket.IO v5 / Engine.IO v4 client over the websocket transport.

use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// A client WebSocket.
pub type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What arrived on a WebSocket.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
    Close(Option<u16>),
    Timeout,
    Ended,
}

/// A WebSocket seen frame by frame (WebSocket-level pings and pongs are skipped).
pub struct RawWs {
    pub ws: Stream,
}

impl RawWs {
    pub async fn connect(url: &str) -> Result<RawWs, tungstenite::Error> {
        let (ws, _) = connect_async(url).await?;
        Ok(RawWs { ws })
    }

    pub async fn send_text(&mut self, text: &str) -> Result<(), tungstenite::Error> {
        self.ws.send(Message::Text(text.into())).await
    }

    pub async fn send_message(&mut self, m: Message) -> Result<(), tungstenite::Error> {
        self.ws.send(m).await
    }

    /// The next data or close frame, or `Timeout` after `within`.
    pub async fn next(&mut self, within: Duration) -> Frame {
        self.next_until(Instant::now() + within).await
    }

    pub async fn next_until(&mut self, deadline: Instant) -> Frame {
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

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// `url` with the Engine.IO query of the websocket transport added.
pub fn engine_url(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}EIO=4&transport=websocket")
}

/// A Socket.IO event frame on `/`: `42["name",data]`.
pub fn event_frame(name: &str, data: &Value) -> String {
    format!("42{}", json!([name, data]))
}

/// The name and arguments of a Socket.IO event frame on `/` (`42[...]`, with or without an
/// ack id); `None` for any other frame.
pub fn parse_event(frame: &str) -> Option<(String, Vec<Value>)> {
    let body = frame.strip_prefix("42")?;
    let body = body.trim_start_matches(|c: char| c.is_ascii_digit());
    let mut args: Vec<Value> = serde_json::from_str(body).ok()?;
    if args.is_empty() {
        return None;
    }
    let name = args.remove(0).as_str()?.to_owned();
    Some((name, args))
}

/// A Socket.IO client: the Engine.IO open packet read, Engine.IO pings answered.
pub struct Socket {
    pub ws: RawWs,
    /// The open packet's JSON (`sid`, `pingInterval`, ...).
    pub open: Value,
    /// Answer Engine.IO pings (`2`) with pongs (`3`) while reading.
    pub auto_pong: bool,
}

impl Socket {
    /// Connects to a Socket.IO endpoint (`ws://host/socket.io/`) and reads the open packet.
    pub async fn open(url: &str, within: Duration) -> anyhow::Result<Socket> {
        let ws = RawWs::connect(&engine_url(url))
            .await
            .context("websocket handshake")?;
        let mut s = Socket {
            ws,
            open: Value::Null,
            auto_pong: true,
        };
        let first = s.frame(within).await?;
        let Some(open) = first.strip_prefix('0') else {
            bail!("expected an Engine.IO open packet, got {first}");
        };
        s.open = serde_json::from_str(open).context("open packet")?;
        Ok(s)
    }

    /// Opens and sends CONNECT with `auth: {token}`; returns the CONNECT answer frame as it
    /// came (`40{"sid":...}` or `44{...}`).
    pub async fn connect(
        url: &str,
        token: &str,
        within: Duration,
    ) -> anyhow::Result<(Socket, String)> {
        let mut s = Self::open(url, within).await?;
        s.send(&format!("40{}", json!({ "token": token }))).await?;
        let answer = s.frame(within).await?;
        Ok((s, answer))
    }

    /// Connects and insists the CONNECT was accepted.
    pub async fn join(url: &str, token: &str, within: Duration) -> anyhow::Result<Socket> {
        let (s, answer) = Self::connect(url, token, within).await?;
        if !answer.starts_with("40") {
            bail!("CONNECT refused: {answer}");
        }
        Ok(s)
    }

    pub async fn send(&mut self, text: &str) -> anyhow::Result<()> {
        Ok(self.ws.send_text(text).await?)
    }

    /// The next text frame that is not an Engine.IO ping.
    pub async fn frame(&mut self, within: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + within;
        loop {
            match self.ws.next_until(deadline).await {
                Frame::Text(t) if t == "2" => {
                    if self.auto_pong {
                        self.send("3").await?;
                    }
                }
                Frame::Text(t) => return Ok(t),
                Frame::Binary(_) => continue,
                Frame::Close(code) => bail!("closed by the server ({code:?})"),
                Frame::Ended => bail!("the connection ended"),
                Frame::Timeout => bail!("nothing arrived within {within:?}"),
            }
        }
    }

    /// The next Socket.IO event on `/`: its name and arguments.
    pub async fn event(&mut self, within: Duration) -> anyhow::Result<(String, Vec<Value>)> {
        let f = self.frame(within).await?;
        parse_event(&f).with_context(|| format!("not an event frame: {f}"))
    }

    /// Waits for the named event (skipping others) and returns its first argument.
    pub async fn wait_event(&mut self, name: &str, within: Duration) -> anyhow::Result<Value> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (n, mut args) = self.event(left).await?;
            if n == name {
                return Ok(if args.is_empty() {
                    Value::Null
                } else {
                    args.swap_remove(0)
                });
            }
        }
    }

    pub async fn emit(&mut self, name: &str, data: &Value) -> anyhow::Result<()> {
        self.send(&event_frame(name, data)).await
    }

    /// The WebSocket, for callers that split it into a sink and a stream.
    pub fn into_stream(self) -> Stream {
        self.ws.ws
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let f = event_frame("message", &json!({"text": "hi"}));
        assert_eq!(f, r#"42["message",{"text":"hi"}]"#);
        assert_eq!(
            parse_event(&f),
            Some(("message".to_owned(), vec![json!({"text": "hi"})]))
        );
        assert_eq!(
            parse_event(r#"4212["send_message",1,2]"#),
            Some(("send_message".to_owned(), vec![json!(1), json!(2)]))
        );
        assert_eq!(parse_event("40"), None);
        assert_eq!(parse_event("42[]"), None);
        assert_eq!(parse_event("42[1]"), None);
    }

    #[test]
    fn engine_urls() {
        assert_eq!(
            engine_url("ws://h/socket.io/"),
            "ws://h/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            engine_url("ws://h/socket.io/?x=1"),
            "ws://h/socket.io/?x=1&EIO=4&transport=websocket"
        );
    }
}
