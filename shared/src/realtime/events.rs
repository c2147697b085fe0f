//! Events the server sends, and their framing for each protocol: Socket.IO clients get
//! `42["name",data]`, plain-JSON clients `{"event":"name","data":..}`.

use serde_json::{Value, json};

use crate::api::{
    DeliveredEvent, MessageEvent, ReadAckEvent, ReadEvent, SystemEvent, TypingEvent, UnreadEvent,
};
use crate::error::Error;
use crate::socketio;
use crate::store::Protocol;

#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    Message(MessageEvent),
    Delivered(DeliveredEvent),
    Read(ReadEvent),
    ReadAck(ReadAckEvent),
    Typing(TypingEvent),
    System(SystemEvent),
    Unread(UnreadEvent),
}

impl ServerEvent {
    pub fn name(&self) -> &'static str {
        match self {
            ServerEvent::Message(_) => "message",
            ServerEvent::Delivered(_) => "delivered",
            ServerEvent::Read(_) => "read",
            ServerEvent::ReadAck(_) => "read_ack",
            ServerEvent::Typing(_) => "typing",
            ServerEvent::System(_) => "system",
            ServerEvent::Unread(_) => "unread",
        }
    }

    pub fn data(&self) -> Value {
        let v = match self {
            ServerEvent::Message(e) => serde_json::to_value(e),
            ServerEvent::Delivered(e) => serde_json::to_value(e),
            ServerEvent::Read(e) => serde_json::to_value(e),
            ServerEvent::ReadAck(e) => serde_json::to_value(e),
            ServerEvent::Typing(e) => serde_json::to_value(e),
            ServerEvent::System(e) => serde_json::to_value(e),
            ServerEvent::Unread(e) => serde_json::to_value(e),
        };
        v.unwrap_or(Value::Null)
    }

    /// The WebSocket frame for a connection speaking `protocol`.
    pub fn frame(&self, protocol: Protocol) -> String {
        frame_of(protocol, self.name(), &self.data(), None)
    }

    /// The frame with the event's offset in its user's log (connection state recovery).
    pub fn frame_at(&self, protocol: Protocol, offset: Option<i64>) -> String {
        frame_of(protocol, self.name(), &self.data(), offset)
    }
}

/// The frame of event `name` with `data`: Socket.IO `42["name",data]`, or with an offset
/// `42["name",data,"<offset>"]` (the last argument, where socket.io-client looks for it);
/// plain JSON `{"event","data"}`, with an offset `"offset":"<offset>"` too.
pub fn frame_of(protocol: Protocol, name: &str, data: &Value, offset: Option<i64>) -> String {
    match (protocol, offset) {
        (Protocol::SocketIo | Protocol::Engine, None) => socketio::event("/", name, data),
        (Protocol::SocketIo | Protocol::Engine, Some(o)) => {
            socketio::codec::event_args("/", name, &[data.clone(), json!(o.to_string())], None)
        }
        (Protocol::Json, None) => json!({ "event": name, "data": data }).to_string(),
        (Protocol::Json, Some(o)) => {
            json!({ "event": name, "data": data, "offset": o.to_string() }).to_string()
        }
    }
}

impl ServerEvent {
    /// A `system` error event for a refused client event.
    pub fn error(e: &Error, event: Option<&str>) -> Self {
        let p = e.public();
        ServerEvent::System(SystemEvent::Error {
            code: p.code.to_owned(),
            message: p.message,
            event: event.map(str::to_owned),
            retry_after: p.retry_after.map(whole_seconds),
        })
    }
}

/// The Socket.IO ack argument for a refused event: `{"error":{code, message, retry_after?}}`.
pub fn ack_error(e: &Error) -> Value {
    let p = e.public();
    let mut error = json!({ "code": p.code, "message": p.message });
    if let Some(wait) = p.retry_after {
        error["retry_after"] = json!(whole_seconds(wait));
    }
    json!({ "error": error })
}

/// A wait in whole seconds, rounded up.
fn whole_seconds(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserId;

    #[test]
    fn frames_per_protocol() {
        let from = UserId::new();
        let e = ServerEvent::Typing(TypingEvent { from, typing: true });
        assert_eq!(
            e.frame(Protocol::SocketIo),
            format!(r#"42["typing",{{"from":"{from}","typing":true}}]"#)
        );
        let v: Value = serde_json::from_str(&e.frame(Protocol::Json)).expect("json");
        assert_eq!(
            v,
            json!({"event":"typing","data":{"from":from.to_string(),"typing":true}})
        );
    }

    #[test]
    fn system_events() {
        let u = UserId::new();
        let w = ServerEvent::System(SystemEvent::Welcome {
            user_id: u,
            pending: 3,
            pid: None,
            recovered: None,
        });
        assert_eq!(
            w.data(),
            json!({"type":"welcome","user_id":u.to_string(),"pending":3})
        );
        // With an offset: the last argument (Socket.IO), a field (plain JSON).
        let typing = ServerEvent::Typing(crate::api::TypingEvent {
            from: u,
            typing: true,
        });
        assert_eq!(
            typing.frame_at(Protocol::SocketIo, Some(17)),
            format!(r#"42["typing",{{"from":"{u}","typing":true}},"17"]"#)
        );
        let json_frame: Value =
            serde_json::from_str(&typing.frame_at(Protocol::Json, Some(17))).unwrap();
        assert_eq!(json_frame["offset"], "17");
        assert_eq!(json_frame["event"], "typing");
        let err = ServerEvent::error(&crate::error::ChatError::Forbidden.into(), Some("read"));
        assert_eq!(err.data()["type"], "error");
        assert_eq!(err.data()["code"], "forbidden");
        assert_eq!(err.data()["event"], "read");
    }
}
