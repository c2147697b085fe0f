//! The chat events every real-time client can send (`send_message`, `typing`, `read`), as
//! one set of services that both the Socket.IO shim and the plain-JSON route functions call.

use std::time::Duration;

use bson::doc;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{
    DeliveredEvent, MessageEvent, ReadAckEvent, ReadArgs, ReadEvent, SendMessageArgs, TypingArgs,
    TypingEvent,
};
use crate::app::App;
use crate::chat::{self, NewMessage};
use crate::domain::{ClientMsgId, ConnectionId, MessageId, MessageText, UserId};
use crate::error::{ChatError, InputError, Result};
use crate::realtime::connections;
use crate::realtime::events::ServerEvent;
use crate::realtime::fanout;
use crate::scheduler::Task;
use crate::store::Protocol;
use crate::time;

/// Who sent an event: the connection and its authenticated user.
#[derive(Debug, Clone)]
pub struct Caller {
    pub connection: ConnectionId,
    pub user: UserId,
    pub protocol: Protocol,
}

/// A client event, parsed from a Socket.IO event or a plain-JSON action.
#[derive(Debug)]
pub enum ClientEvent {
    SendMessage(SendMessageArgs),
    Typing(TypingArgs),
    Read(ReadArgs),
    Unknown(String),
}

impl ClientEvent {
    /// `data` is the event's first argument (Socket.IO) or the action's body (JSON).
    pub fn parse(name: &str, data: Option<Value>) -> Result<Self, InputError> {
        fn args<T: DeserializeOwned>(name: &str, data: Option<Value>) -> Result<T, InputError> {
            let data = data.ok_or_else(|| {
                InputError::InvalidBody(format!("`{name}` needs an object argument"))
            })?;
            serde_json::from_value(data)
                .map_err(|e| InputError::InvalidBody(format!("`{name}`: {e}")))
        }
        Ok(match name {
            "send_message" => ClientEvent::SendMessage(args(name, data)?),
            "typing" => ClientEvent::Typing(args(name, data)?),
            "read" => ClientEvent::Read(args(name, data)?),
            other => ClientEvent::Unknown(other.to_owned()),
        })
    }
}

/// A stored message whose fan-out is still to do (after the sender got its ack).
#[derive(Debug)]
pub struct Sent {
    pub event: MessageEvent,
    created: bool,
    delay: Option<Duration>,
}

/// `send_message`: validates and stores. Call [`Sent::fan_out`] next.
pub async fn send_message(app: &App, caller: &Caller, args: SendMessageArgs) -> Result<Sent> {
    let to = UserId::parse(&args.to)?;
    let text = MessageText::parse(&args.text)?;
    let client_id = args
        .client_id
        .as_deref()
        .map(ClientMsgId::parse)
        .transpose()?;
    let delay = app.experiments.delivery_delay();
    let deliver_after =
        delay.map(|d| time::now() + chrono::TimeDelta::from_std(d).unwrap_or_default());
    let stored = chat::store_message(
        app,
        NewMessage {
            from: caller.user,
            to,
            text,
            client_id,
        },
        deliver_after,
    )
    .await?;
    Ok(Sent {
        event: fanout::message_event(&stored.message),
        created: stored.created,
        delay,
    })
}

impl Sent {
    /// Echoes the message to the sender's connections and delivers it to the recipient's:
    /// at once, or after the latency illusion's delay through the scheduler. A retry of an
    /// earlier send (same `client_id`) is not fanned out again. Failures here lose nothing:
    /// the message is stored and stays undelivered until a push succeeds (the recipient's
    /// next connect, or the sweep).
    ///
    /// Without a delay the message goes straight to the recipient's connections and is
    /// marked delivered with one conditional update: one connections query serves the echo,
    /// the delivery and the `delivered` notice. Frames from one connection are handled in
    /// order, so a sender's messages reach the recipient in order.
    pub async fn fan_out(&self, app: &App) {
        if !self.created {
            return;
        }
        if let Err(e) = self.fan_out_inner(app).await {
            tracing::warn!(error = %e, "fan-out failed; the message stays undelivered until a push succeeds");
        }
    }

    async fn fan_out_inner(&self, app: &App) -> Result<()> {
        let (from, to) = (self.event.from, self.event.to);
        let conns = connections::of_users(app, &[from, to]).await?;
        let (senders, recipients): (Vec<_>, Vec<_>) =
            conns.into_iter().partition(|c| c.user() == Some(from));
        let message = ServerEvent::Message(self.event.clone());
        match self.delay {
            None => {
                let (_, took) = futures::join!(
                    fanout::push(app, &senders, &message),
                    fanout::push(app, &recipients, &message)
                );
                if took.is_empty() {
                    return Ok(());
                }
                let (at, marked) =
                    fanout::mark_delivered(app, vec![self.event.message_id.object_id()]).await?;
                if marked == 1 {
                    let delivered = ServerEvent::Delivered(DeliveredEvent {
                        message_id: self.event.message_id,
                        to,
                        delivered_at: at,
                    });
                    fanout::push(app, &senders, &delivered).await;
                }
            }
            Some(delay) => {
                fanout::push(app, &senders, &message).await;
                let task = Task::Deliver {
                    user: to,
                    not_before_ms: self.event.created_at.timestamp_millis()
                        + delay.as_millis() as i64,
                };
                if let Err(e) = app.invoker.invoke_async(&task).await {
                    tracing::warn!(error = %e, "could not queue delivery; the sweep will deliver");
                }
            }
        }
        Ok(())
    }
}

/// `read`: only the recipient may mark a message read. Tells the sender; returns the ack
/// for the reader.
pub async fn read(app: &App, caller: &Caller, args: ReadArgs) -> Result<ReadAckEvent> {
    if let Some(up_to) = &args.up_to {
        return crate::conversations::read_up_to(app, caller.user, MessageId::parse(up_to)?).await;
    }
    let id = MessageId::parse(&args.message_id)?;
    let messages = &app.store.messages;
    let message = messages
        .find_one(doc! { "_id": id.object_id() })
        .await?
        .ok_or(ChatError::UnknownMessage)?;
    if UserId::from_object_id(message.to) != caller.user {
        return Err(ChatError::Forbidden.into());
    }
    let (read_at, first_read) = match message.read_at {
        Some(at) => (time::from_bson(at), false),
        None => {
            let now = time::now();
            let res = messages
                .update_one(
                    doc! { "_id": id.object_id(), "read_at": bson::Bson::Null },
                    doc! { "$set": { "read_at": time::to_bson(now) } },
                )
                .await?;
            if res.modified_count == 1 {
                (now, true)
            } else {
                let again = messages.find_one(doc! { "_id": id.object_id() }).await?;
                (
                    again.and_then(|m| m.read_at).map_or(now, time::from_bson),
                    false,
                )
            }
        }
    };
    let sender = UserId::from_object_id(message.from);
    if first_read {
        crate::conversations::note_read(app, caller.user, sender, 1).await;
        // A message read (say, in history) before any push reached a device was delivered.
        if message.delivered_at.is_none() {
            let res = messages
                .update_one(
                    doc! { "_id": id.object_id(), "delivered_at": bson::Bson::Null },
                    doc! { "$set": { "delivered_at": time::to_bson(read_at) } },
                )
                .await?;
            if res.modified_count == 1 {
                let delivered = ServerEvent::Delivered(DeliveredEvent {
                    message_id: id,
                    to: caller.user,
                    delivered_at: read_at,
                });
                fanout::push_to_users(app, &[sender], &delivered).await?;
            }
        }
        let receipt = ServerEvent::Read(ReadEvent {
            message_id: id,
            by: caller.user,
            read_at,
        });
        fanout::push_to_users(app, &[sender], &receipt).await?;
    }
    Ok(ReadAckEvent {
        message_id: id,
        read_at,
    })
}

/// `typing`: relayed to the recipient's connections.
pub async fn typing(app: &App, caller: &Caller, args: TypingArgs) -> Result<()> {
    let to = UserId::parse(&args.to)?;
    if to == caller.user {
        return Err(ChatError::SelfMessage.into());
    }
    crate::realtime::phantom::note_real_typing(app, caller.user, to, args.typing).await?;
    let event = ServerEvent::Typing(TypingEvent {
        from: caller.user,
        typing: args.typing,
    });
    fanout::push_to_users(app, &[to], &event).await?;
    Ok(())
}

/// What a handled event answers: the value for an ack (Socket.IO) and, for `read`, the
/// `read_ack` event the reader's connection gets.
#[derive(Debug)]
pub struct Outcome {
    pub ack: Value,
    pub reply: Option<ServerEvent>,
    pub sent: Option<Sent>,
}

/// Runs one client event for `caller`.
pub async fn dispatch(app: &App, caller: &Caller, event: ClientEvent) -> Result<Outcome> {
    match event {
        ClientEvent::SendMessage(args) => {
            let sent = send_message(app, caller, args).await?;
            Ok(Outcome {
                ack: serde_json::to_value(&sent.event).unwrap_or(Value::Null),
                reply: None,
                sent: Some(sent),
            })
        }
        ClientEvent::Read(args) => {
            let ack = read(app, caller, args).await?;
            Ok(Outcome {
                ack: serde_json::to_value(&ack).unwrap_or(Value::Null),
                reply: Some(ServerEvent::ReadAck(ack)),
                sent: None,
            })
        }
        ClientEvent::Typing(args) => {
            typing(app, caller, args).await?;
            Ok(Outcome {
                ack: serde_json::json!({ "ok": true }),
                reply: None,
                sent: None,
            })
        }
        ClientEvent::Unknown(name) => Err(ChatError::UnknownEvent(name).into()),
    }
}
