//! Engine.IO v4 / Socket.IO v5 framing over the websocket transport, one packet per frame.
//!
//! Engine.IO packets (`0` open, `1` close, `2` ping, `3` pong, `4` message, `5` upgrade,
//! `6` noop) and session ids are `engineioxide-core`'s; binary frames are binary messages. Socket.IO packets
//! ride inside `4` messages and are parsed and encoded by `socketioxide-parser-common`; this
//! module turns them into the [`ClientPacket`] enum the server dispatches on and builds the
//! server's frames. A binary packet's attachments arrive as the following binary frames:
//! [`decode`] reports how many to wait for and [`decode_with_attachments`] completes it.
//! Malformed input is a [`ProtocolError`], never a panic.

use std::collections::VecDeque;

use std::time::Duration;

use bytes::Bytes;
pub use engineioxide_core::Packet as EnginePacket;
use engineioxide_core::{OpenPacket, PacketParseError, ProtocolVersion, Sid};
use serde::Serialize;
use serde_json::Value;
use socketioxide_core::Str;
use socketioxide_core::Value as SioValue;
use socketioxide_core::packet::{Packet, PacketData};
use socketioxide_core::parser::{Parse, ParseConfig, ParseError, ParserState};
use socketioxide_parser_common::CommonParser;

/// Event names a client may not emit (reserved by Socket.IO).
pub const RESERVED_EVENTS: &[&str] = &[
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Why a frame was refused; the connection is closed for it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("empty frame")]
    Empty,
    #[error("unknown Engine.IO packet type `{0}`")]
    UnknownEngineType(char),
    #[error("malformed Socket.IO packet: {0}")]
    Malformed(String),
    #[error("event payload must be a non-empty array starting with the event name")]
    BadEventPayload,
    #[error("event name `{0}` is reserved")]
    ReservedEvent(String),
    #[error("binary attachments cannot cross API Gateway; send them base64-encoded")]
    BinaryUnsupported,
    #[error("a binary frame arrived that no packet was waiting for")]
    UnexpectedBinary,
}

/// Decodes an Engine.IO packet a client sent as a websocket text frame (with
/// `engineioxide-core`). Binary data travels in binary frames on this transport, so a
/// base64 `b` packet is refused, as is anything only a server sends.
pub fn decode_engine(frame: &str) -> Result<EnginePacket, ProtocolError> {
    match EnginePacket::parse(ProtocolVersion::V4, frame.to_owned()) {
        Ok(EnginePacket::Binary(_) | EnginePacket::BinaryV3(_)) => {
            Err(ProtocolError::UnknownEngineType('b'))
        }
        Ok(EnginePacket::Open(_)) => Err(ProtocolError::UnknownEngineType('0')),
        Ok(packet) => Ok(packet),
        Err(PacketParseError::InvalidPacketType(None)) => Err(ProtocolError::Empty),
        Err(PacketParseError::InvalidPacketType(Some(_))) => Err(ProtocolError::UnknownEngineType(
            frame.chars().next().unwrap_or('?'),
        )),
        Err(e) => Err(ProtocolError::Malformed(e.to_string())),
    }
}

/// The Engine.IO open packet (handshake) for the websocket transport.
pub fn open_packet(
    sid: Sid,
    ping_interval: Duration,
    ping_timeout: Duration,
    max_payload: u64,
) -> String {
    open_packet_upgrading(sid, ping_interval, ping_timeout, max_payload, false)
}

/// The open packet; `upgrade` offers the websocket upgrade (a long-polling handshake).
pub fn open_packet_upgrading(
    sid: Sid,
    ping_interval: Duration,
    ping_timeout: Duration,
    max_payload: u64,
    upgrade: bool,
) -> String {
    let mut open = OpenPacket {
        sid,
        upgrades: Default::default(),
        ping_interval,
        ping_timeout,
        max_payload,
    };
    if upgrade {
        open.upgrades
            .push(engineioxide_core::TransportType::Websocket);
    }
    String::from(EnginePacket::Open(open))
}

/// The server's heartbeat ping.
pub fn ping() -> String {
    String::from(EnginePacket::Ping)
}

/// A Socket.IO packet from a client, after validation.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientPacket {
    /// `0[/ns,][{auth}]`
    Connect { ns: String, auth: Option<Value> },
    /// `1[/ns,]`
    Disconnect { ns: String },
    /// `2[/ns,][id]["name",...args]` (or `5<n>-...` with `n` binary attachments, whose
    /// places in `args` are `{"_placeholder":true,"num":i}`).
    Event {
        ns: String,
        name: String,
        args: Vec<Value>,
        ack: Option<i64>,
        attachments: Vec<Bytes>,
    },
    /// `3[/ns,]id[...args]` (or `6<n>-...`): the client acknowledging a server emit.
    Ack {
        ns: String,
        id: i64,
        args: Vec<Value>,
        attachments: Vec<Bytes>,
    },
}

/// What one Engine.IO `4` message holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Packet(ClientPacket),
    /// A binary packet's header: `expected` binary frames follow.
    AwaitingAttachments {
        expected: usize,
    },
}

fn parse_error(e: ParseError) -> ProtocolError {
    ProtocolError::Malformed(e.to_string())
}

/// Decodes the payload of an Engine.IO `4` message.
pub fn decode(payload: &str) -> Result<Decoded, ProtocolError> {
    let state = ParserState::default();
    let config = ParseConfig::default();
    match CommonParser.decode_str(&config, &state, Str::from(payload.to_owned())) {
        Ok(packet) => Ok(Decoded::Packet(convert(packet)?)),
        Err(ParseError::NeedsMoreBinaryData) => Ok(Decoded::AwaitingAttachments {
            expected: state
                .incoming_binary_cnt
                .load(std::sync::atomic::Ordering::Acquire),
        }),
        Err(e) => Err(parse_error(e)),
    }
}

/// Completes a binary packet from its header and its attachments, in order.
pub fn decode_with_attachments(
    header: &str,
    attachments: &[Vec<u8>],
) -> Result<ClientPacket, ProtocolError> {
    let state = ParserState::default();
    let config = ParseConfig::default();
    let mut result = CommonParser.decode_str(&config, &state, Str::from(header.to_owned()));
    for bin in attachments {
        match result {
            Err(ParseError::NeedsMoreBinaryData) => {
                result = CommonParser.decode_bin(&config, &state, Bytes::copy_from_slice(bin));
            }
            _ => return Err(ProtocolError::UnexpectedBinary),
        }
    }
    match result {
        Ok(packet) => convert(packet),
        Err(ParseError::NeedsMoreBinaryData) => {
            Err(ProtocolError::Malformed("attachments missing".into()))
        }
        Err(e) => Err(parse_error(e)),
    }
}

fn convert(packet: Packet) -> Result<ClientPacket, ProtocolError> {
    let ns = packet.ns.to_string();
    match packet.inner {
        PacketData::Connect(data) => {
            let auth = match data {
                None => None,
                Some(v) => Some(json_of(&v)?),
            };
            if auth.as_ref().is_some_and(|a| !a.is_object()) {
                return Err(ProtocolError::Malformed(
                    "CONNECT payload must be an object".into(),
                ));
            }
            Ok(ClientPacket::Connect { ns, auth })
        }
        PacketData::Disconnect => Ok(ClientPacket::Disconnect { ns }),
        PacketData::Event(data, ack) | PacketData::BinaryEvent(data, ack) => {
            let attachments: Vec<Bytes> = match &data {
                SioValue::Str(_, Some(bins)) => bins.iter().cloned().collect(),
                _ => Vec::new(),
            };
            let mut items = match json_of(&data)? {
                Value::Array(items) if !items.is_empty() => items,
                _ => return Err(ProtocolError::BadEventPayload),
            };
            let name = match items.remove(0) {
                Value::String(name) => name,
                _ => return Err(ProtocolError::BadEventPayload),
            };
            if RESERVED_EVENTS.contains(&name.as_str()) {
                return Err(ProtocolError::ReservedEvent(name));
            }
            Ok(ClientPacket::Event {
                ns,
                name,
                args: items,
                ack,
                attachments,
            })
        }
        PacketData::EventAck(data, id) | PacketData::BinaryAck(data, id) => {
            let attachments: Vec<Bytes> = match &data {
                SioValue::Str(_, Some(bins)) => bins.iter().cloned().collect(),
                _ => Vec::new(),
            };
            match json_of(&data)? {
                Value::Array(args) => Ok(ClientPacket::Ack {
                    ns,
                    id,
                    args,
                    attachments,
                }),
                _ => Err(ProtocolError::Malformed(
                    "ACK payload must be an array".into(),
                )),
            }
        }
        PacketData::ConnectError(_) => Err(ProtocolError::Malformed(
            "clients cannot send CONNECT_ERROR".into(),
        )),
    }
}

fn json_of(v: &SioValue) -> Result<Value, ProtocolError> {
    let text = v
        .as_str()
        .ok_or_else(|| ProtocolError::Malformed("binary payload".into()))?;
    serde_json::from_str(text).map_err(|e| ProtocolError::Malformed(e.to_string()))
}

fn engine_message(packet: Packet) -> String {
    engine_frames(packet).0
}

/// The Engine.IO text frame of a packet, and its attachments (binary frames that follow).
fn engine_frames(packet: Packet) -> (String, Vec<Bytes>) {
    match CommonParser.encode(packet) {
        SioValue::Str(s, bins) => (
            format!("4{}", s.as_str()),
            bins.map(Vec::from).unwrap_or_default(),
        ),
        SioValue::Bytes(b) => (String::new(), vec![b]),
    }
}

fn with_bins(v: &impl Serialize, attachments: &[Bytes]) -> SioValue {
    let text = Str::from(serde_json::to_string(v).unwrap_or_else(|_| "null".into()));
    if attachments.is_empty() {
        SioValue::Str(text, None)
    } else {
        SioValue::Str(
            text,
            Some(attachments.iter().cloned().collect::<VecDeque<Bytes>>()),
        )
    }
}

fn str_value(v: &impl Serialize) -> SioValue {
    SioValue::Str(
        Str::from(serde_json::to_string(v).unwrap_or_else(|_| "null".into())),
        None,
    )
}

/// `40{"sid":..}` (with the namespace prefix when not `/`), and `"pid"` for a recoverable
/// session.
pub fn connect_ok(ns: &str, sid: &str, pid: Option<&str>) -> String {
    let answer = match pid {
        Some(pid) => serde_json::json!({ "sid": sid, "pid": pid }),
        None => serde_json::json!({ "sid": sid }),
    };
    engine_message(Packet::connect(ns.to_owned(), Some(str_value(&answer))))
}

/// `44{"message":..}`
pub fn connect_error(ns: &str, message: &str) -> String {
    // The common parser writes CONNECT_ERROR's message as `{"message":...}`.
    engine_message(Packet::connect_error(ns.to_owned(), message))
}

/// `41` for `ns`: the server ends the client's namespace session.
pub fn disconnect(ns: &str) -> String {
    engine_message(Packet::disconnect(ns.to_owned()))
}

/// `42["name",data]`
pub fn event(ns: &str, name: &str, data: &impl Serialize) -> String {
    event_args(
        ns,
        name,
        &[serde_json::to_value(data).unwrap_or(Value::Null)],
        None,
    )
}

/// `42[id]["name",...args]`
pub fn event_args(ns: &str, name: &str, args: &[Value], ack: Option<i64>) -> String {
    let mut items = Vec::with_capacity(args.len() + 1);
    items.push(Value::String(name.to_owned()));
    items.extend(args.iter().cloned());
    let mut packet = Packet::event(ns.to_owned(), str_value(&items));
    if let Some(id) = ack {
        packet.inner.set_ack_id(id);
    }
    engine_message(packet)
}

/// `43<id>[...args]`
pub fn ack(ns: &str, id: i64, args: &[Value]) -> String {
    engine_message(Packet::ack(ns.to_owned(), str_value(&args), id))
}

/// `45<n>-[/ns,][id]["name",...args]` and its `n` attachments (plain `42` when there are none).
pub fn binary_event(
    ns: &str,
    name: &str,
    args: &[Value],
    attachments: &[Bytes],
    ack: Option<i64>,
) -> (String, Vec<Bytes>) {
    let mut items = Vec::with_capacity(args.len() + 1);
    items.push(Value::String(name.to_owned()));
    items.extend(args.iter().cloned());
    let mut packet = Packet::event(ns.to_owned(), with_bins(&items, attachments));
    if let Some(id) = ack {
        packet.inner.set_ack_id(id);
    }
    engine_frames(packet)
}

/// `46<n>-[/ns,]<id>[...args]` and its attachments (plain `43` when there are none).
pub fn binary_ack(
    ns: &str,
    id: i64,
    args: &[Value],
    attachments: &[Bytes],
) -> (String, Vec<Bytes>) {
    engine_frames(Packet::ack(
        ns.to_owned(),
        with_bins(&args, attachments),
        id,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn engine_packets() {
        assert_eq!(decode_engine("3"), Ok(EnginePacket::Pong));
        assert_eq!(decode_engine("2probe"), Ok(EnginePacket::PingUpgrade));
        assert_eq!(decode_engine("3probe"), Ok(EnginePacket::PongUpgrade));
        assert_eq!(decode_engine("2"), Ok(EnginePacket::Ping));
        assert_eq!(
            decode_engine("40"),
            Ok(EnginePacket::Message(socketioxide_core::Str::from(
                "0".to_owned()
            )))
        );
        assert_eq!(decode_engine(""), Err(ProtocolError::Empty));
        assert_eq!(
            decode_engine("9"),
            Err(ProtocolError::UnknownEngineType('9'))
        );
        assert_eq!(
            decode_engine("é"),
            Err(ProtocolError::UnknownEngineType('é'))
        );
        assert_eq!(
            decode_engine("0{}"),
            Err(ProtocolError::UnknownEngineType('0'))
        );
        assert_eq!(
            decode_engine("bAAE="),
            Err(ProtocolError::UnknownEngineType('b'))
        );
        assert!(matches!(
            decode_engine("b%%"),
            Err(ProtocolError::Malformed(_))
        ));
    }

    #[test]
    fn open_packet_shape() {
        let sid: Sid = "AAAAAAAAAAAAAAAA".parse().expect("sid");
        let p = open_packet(
            sid,
            Duration::from_millis(25000),
            Duration::from_millis(20000),
            100000,
        );
        assert!(p.starts_with('0'));
        let v: Value = serde_json::from_str(&p[1..]).expect("json");
        assert_eq!(
            v,
            json!({"sid":"AAAAAAAAAAAAAAAA","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":100000})
        );
    }

    fn decode(payload: &str) -> Result<ClientPacket, ProtocolError> {
        match super::decode(payload)? {
            Decoded::Packet(p) => Ok(p),
            Decoded::AwaitingAttachments { .. } => Err(ProtocolError::BinaryUnsupported),
        }
    }

    #[test]
    fn decodes_client_packets() {
        assert_eq!(
            decode(r#"0{"token":"t"}"#),
            Ok(ClientPacket::Connect {
                ns: "/".into(),
                auth: Some(json!({"token":"t"}))
            })
        );
        assert_eq!(
            decode("0"),
            Ok(ClientPacket::Connect {
                ns: "/".into(),
                auth: None
            })
        );
        assert_eq!(
            decode("0/admin,"),
            Ok(ClientPacket::Connect {
                ns: "/admin".into(),
                auth: None
            })
        );
        assert_eq!(
            decode(r#"212["send_message",{"to":"x"}]"#),
            Ok(ClientPacket::Event {
                ns: "/".into(),
                name: "send_message".into(),
                args: vec![json!({"to":"x"})],
                ack: Some(12),
                attachments: vec![],
            })
        );
        assert_eq!(
            decode(r#"2/chat,["typing"]"#),
            Ok(ClientPacket::Event {
                ns: "/chat".into(),
                name: "typing".into(),
                args: vec![],
                ack: None,
                attachments: vec![],
            })
        );
        assert_eq!(decode("1"), Ok(ClientPacket::Disconnect { ns: "/".into() }));
        assert_eq!(
            decode(r#"31["ok"]"#),
            Ok(ClientPacket::Ack {
                ns: "/".into(),
                id: 1,
                args: vec![json!("ok")],
                attachments: vec![],
            })
        );
    }

    #[test]
    fn refuses_bad_packets() {
        assert_eq!(decode(r#"2[]"#), Err(ProtocolError::BadEventPayload));
        assert_eq!(decode(r#"2{"a":1}"#), Err(ProtocolError::BadEventPayload));
        assert_eq!(decode(r#"2[1,2]"#), Err(ProtocolError::BadEventPayload));
        assert_eq!(decode(r#"2"x""#), Err(ProtocolError::BadEventPayload));
        assert_eq!(
            decode(r#"2["connect"]"#),
            Err(ProtocolError::ReservedEvent("connect".into()))
        );
        assert!(matches!(decode("2[nope"), Err(ProtocolError::Malformed(_))));
        assert!(matches!(decode("9"), Err(ProtocolError::Malformed(_))));
        assert!(matches!(decode(""), Err(ProtocolError::Malformed(_))));
        assert!(matches!(
            decode("0\"str\""),
            Err(ProtocolError::Malformed(_))
        ));
        assert_eq!(
            super::decode(r#"51-["upload",{"_placeholder":true,"num":0}]"#),
            Ok(Decoded::AwaitingAttachments { expected: 1 })
        );
        for junk in ["2/é,[\"é\"]", "51é", "é", "3", "3x", "2/", "0/"] {
            let _ = decode(junk);
        }
    }

    #[test]
    fn binary_packets_wait_for_their_attachments() {
        // The Socket.IO payload of an Engine.IO `4` message (no `4` prefix here).
        let header = r#"52-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#;
        assert_eq!(
            super::decode(header),
            Ok(Decoded::AwaitingAttachments { expected: 2 })
        );
        let packet =
            decode_with_attachments(header, &[vec![1, 2, 3], vec![4, 5, 6]]).expect("complete");
        let ClientPacket::Event {
            name,
            args,
            ack,
            attachments,
            ..
        } = packet
        else {
            panic!("an event")
        };
        assert_eq!((name.as_str(), ack), ("message-with-ack", Some(789)));
        assert_eq!(args[0], json!({"_placeholder": true, "num": 0}));
        assert_eq!(
            attachments,
            vec![
                Bytes::from_static(&[1, 2, 3]),
                Bytes::from_static(&[4, 5, 6])
            ]
        );
        assert!(decode_with_attachments(header, &[vec![1]]).is_err());
        assert!(decode_with_attachments(header, &[vec![1], vec![2], vec![3]]).is_err());
        let (text, bins) = binary_ack("/", 789, &args, &attachments);
        assert_eq!(
            text,
            r#"462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
        );
        assert_eq!(bins.len(), 2);
        let (text, _) = binary_event("/", "message-back", &args, &attachments, None);
        assert_eq!(
            text,
            r#"452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
        );
    }

    #[test]
    fn encodes_server_frames() {
        assert_eq!(connect_ok("/", "s1", None), r#"40{"sid":"s1"}"#);
        assert_eq!(connect_ok("/a", "s1", None), r#"40/a,{"sid":"s1"}"#);
        let with_pid = connect_ok("/", "s1", Some("p1"));
        let answer: Value = serde_json::from_str(with_pid.strip_prefix("40").unwrap()).unwrap();
        assert_eq!(answer, serde_json::json!({ "sid": "s1", "pid": "p1" }));
        assert_eq!(
            connect_error("/", "unauthorized"),
            r#"44{"message":"unauthorized"}"#
        );
        assert_eq!(
            event("/", "message", &json!({"a":1})),
            r#"42["message",{"a":1}]"#
        );
        assert_eq!(ack("/", 7, &[json!({"ok":true})]), r#"437[{"ok":true}]"#);
        assert_eq!(disconnect("/"), "41");
        assert_eq!(
            event_args("/x", "e", &[json!(1), json!("two")], Some(3)),
            r#"42/x,3["e",1,"two"]"#
        );
    }
}
