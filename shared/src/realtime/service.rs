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
use crate::limits;
use crate::realtime::connections;
use crate::realtime::events::ServerEvent;
use crate::realtime::fanout::{self, Due, Inbox};
use crate::realtime::outbox;
use crate::store::Protocol;
use crate::task::Task;
use crate::time;

/// Who sent an event: the connection and its authenticated user.
#[derive(Debug, Clone)]
pub struct Caller {
    pub connection: ConnectionId,
    pub user: UserId,
    pub protocol: Protocol,
}

/// `send_message`, validated.
#[derive(Debug, Clone)]
pub struct SendMessage {
    pub to: UserId,
    pub text: MessageText,
    pub client_id: Option<ClientMsgId>,
}

/// `typing`, validated.
#[derive(Debug, Clone, Copy)]
pub struct Typing {
    pub to: UserId,
    pub typing: bool,
}

/// What a `read` marks read.
#[derive(Debug, Clone, Copy)]
pub enum ReadTarget {
    /// `{message_id}`: one message.
    One(MessageId),
    /// `{up_to}`: every unread message from that message's sender up to it.
    UpTo(MessageId),
}

/// `read`, validated.
#[derive(Debug, Clone, Copy)]
pub struct Read {
    pub target: ReadTarget,
}

/// A client event, parsed and validated from a Socket.IO event or a plain-JSON action:
/// services only ever see these types.
#[derive(Debug)]
pub enum ClientEvent {
    SendMessage(SendMessage),
    Typing(Typing),
    Read(Read),
    Unknown(String),
}

impl ClientEvent {
    /// `data` is the event's first argument (Socket.IO) or the action's body (JSON).
    pub fn parse(name: &str, data: Option<Value>) -> Result<Self, InputError> {
        fn args<T: DeserializeOwned>(name: &str, data: Option<Value>) -> Result<T, InputError> {
            let data = data.ok_or_else(|| {
                InputError::InvalidBody(format!("`{name}` needs an object argument"))
            })?;
            serde_json::from_value(data).map_err(|e| {
                InputError::InvalidBody(format!("`{name}`: {}", crate::error::json_problem(&e)))
            })
        }
        Ok(match name {
            "send_message" => {
                let a: SendMessageArgs = args(name, data)?;
                ClientEvent::SendMessage(SendMessage {
                    to: UserId::parse(&a.to)?,
                    text: MessageText::parse(&a.text)?,
                    client_id: a.client_id.as_deref().map(ClientMsgId::parse).transpose()?,
                })
            }
            "typing" => {
                let a: TypingArgs = args(name, data)?;
                ClientEvent::Typing(Typing {
                    to: UserId::parse(&a.to)?,
                    typing: a.typing,
                })
            }
            "read" => {
                let a: ReadArgs = args(name, data)?;
                let target = match &a.up_to {
                    Some(up_to) => ReadTarget::UpTo(MessageId::parse(up_to)?),
                    None => ReadTarget::One(MessageId::parse(&a.message_id)?),
                };
                ClientEvent::Read(Read { target })
            }
            other => ClientEvent::Unknown(other.to_owned()),
        })
    }
}

/// A stored message whose fan-out is still to do (after the sender got its ack). It holds
/// the recipient's inbox until [`Sent::fan_out`] has delivered it.
#[derive(Debug)]
pub struct Sent {
    pub event: MessageEvent,
    delay: Option<Duration>,
    inbox: Option<Inbox>,
    /// The sender's and the recipient's connections (see [`send_message`]).
    conns: Vec<crate::store::ConnectionDoc>,
}

/// `send_message`: validates, then stores under the recipient's inbox lease (which orders
/// it after every message already sent to them). Call [`Sent::fan_out`] next. A retry of an
/// earlier send (same `client_id`, same `to` and `text`) returns the original and fans out
/// nothing; the same `client_id` with another `to` or `text` is `client_id_conflict`.
pub async fn send_message(app: &App, caller: &Caller, args: SendMessage) -> Result<Sent> {
    let SendMessage {
        to,
        text,
        client_id,
    } = args;
    if to == caller.user {
        return Err(ChatError::SelfMessage.into());
    }
    if !crate::users::exists(app, to).await? {
        return Err(ChatError::UnknownUser.into());
    }
    // Read before the inbox is taken, so the lease is held one round trip less (and a
    // recipient's next send, which tends to come as the last delivery gives the lease back,
    // finds it free more often). A device that went live under the lease since is missing
    // from them: then they are read again.
    let users = [caller.user, to];
    let read_at = time::now();
    let mut conns = connections::of_users(app, &users).await?;
    let delay = app.experiments.delivery_delay();
    // A message that goes out now to an online recipient takes its recovery-log offset with
    // the inbox (one round trip fewer than taking it when it is pushed).
    let goes_out_now = delay.is_none() && conns.iter().any(|c| c.user() == Some(to));
    let mut inbox = Inbox::open_for_send(app, to, goes_out_now).await?;
    if inbox.devices_changed_since(read_at) {
        conns = match connections::of_users(app, &users).await {
            Ok(c) => c,
            Err(e) => {
                let _ = inbox.close().await;
                return Err(e);
            }
        };
    }
    let created_at = inbox.next_created_at();
    let deliver_after =
        delay.map(|d| created_at + chrono::TimeDelta::from_std(d).unwrap_or_default());
    let new = NewMessage {
        from: caller.user,
        to,
        text,
        client_id,
    };
    let stored = match chat::store_message(app, new, created_at, deliver_after).await {
        Ok(s) => s,
        Err(e) => {
            // Nothing was delivered under it, so nothing is left to record.
            let _ = inbox.close().await;
            return Err(e);
        }
    };
    let inbox = if stored.created {
        inbox.stored(&stored.message);
        Some(inbox)
    } else {
        let _ = inbox.close().await;
        None
    };
    Ok(Sent {
        event: fanout::message_event(&stored.message),
        delay,
        inbox,
        conns,
    })
}

/// What [`Sent::fan_out`] did under the inbox lease.
enum Fanned {
    /// Delivered at once: what the delivery marked (with its last round, recorded as the
    /// inbox closed).
    Now {
        delivered: Result<Vec<fanout::Delivered>>,
    },
    /// Echoed, and queued for after the latency illusion's delay.
    Queued,
}

impl Sent {
    /// Delivers the message to the recipient's connections under the inbox lease, at once
    /// (with anything older that waited), then echoes it to the sender's with its
    /// `delivered`; or, with the latency illusion's delay, echoes it and delivers it through
    /// the scheduler. Failures here lose nothing: the
    /// message is stored and stays undelivered until a push succeeds (the recipient's next
    /// connect, or the sweep).
    pub async fn fan_out(self, app: &App) {
        self.fan_out_with(app, async {}).await;
    }

    /// [`Sent::fan_out`], with `alongside` (the sender's ack) running concurrently with the
    /// delivery: it is done before any `delivered` notice goes out, and the inbox is not
    /// held for it.
    pub async fn fan_out_with(mut self, app: &App, alongside: impl Future<Output = ()>) {
        let Some(inbox) = self.inbox.take() else {
            alongside.await;
            return;
        };
        let delivery = async {
            let result = self.fan_out_inner(app, &inbox).await;
            // Given back as soon as the recipient's devices have the message; the notices
            // need no lease.
            let last_round = inbox.close().await;
            match result {
                Ok(Fanned::Now { delivered }) => {
                    let delivered = delivered.map(|d| fanout::with_last_round(d, last_round));
                    Ok(Fanned::Now { delivered })
                }
                other => other,
            }
        };
        let (result, ()) = futures::join!(delivery, alongside);
        let notified = match result {
            Ok(Fanned::Now { delivered }) => {
                let users = [self.event.from, self.event.to];
                let known = fanout::Known {
                    users: &users,
                    conns: &self.conns,
                };
                // The echo to the sender's devices goes with its `delivered` (one log
                // append for both); if the delivery failed, alone.
                let delivered = delivered.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "delivery failed; it waits for the next push");
                    Vec::new()
                });
                fanout::notify_senders(
                    app,
                    self.event.to,
                    &delivered,
                    Some(known),
                    Some(&self.event),
                )
                .await
            }
            Ok(Fanned::Queued) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = notified {
            tracing::warn!(error = %e, "fan-out failed; the message stays undelivered until a push succeeds");
        }
    }

    /// Delivers the message at once, or echoes it and queues its delivery for after its
    /// delay.
    async fn fan_out_inner(&self, app: &App, inbox: &Inbox) -> Result<Fanned> {
        let conns = &self.conns;
        let (from, to) = (self.event.from, self.event.to);
        let users = [from, to];
        match self.delay {
            None => {
                let known = fanout::Known {
                    users: &users,
                    conns,
                };
                let delivered = inbox.deliver(app, Due::Now, Some(known)).await;
                Ok(Fanned::Now { delivered })
            }
            Some(delay) => {
                let senders: Vec<_> = conns
                    .iter()
                    .filter(|c| c.user() == Some(from))
                    .cloned()
                    .collect();
                let message = ServerEvent::Message(self.event.clone());
                outbox::push(app, from, &senders, &message).await;
                let task = Task::Deliver {
                    user: to,
                    not_before_ms: self.event.created_at.timestamp_millis()
                        + delay.as_millis() as i64,
                };
                if let Err(e) = app.invoker.invoke_async(&task).await {
                    tracing::warn!(error = %e, "could not queue delivery; the sweep will deliver");
                }
                Ok(Fanned::Queued)
            }
        }
    }
}

/// `read`: only the recipient may mark a message read. Tells the sender; returns the ack
/// for the reader and whether this was the first read (receipts go out only then). With
/// `up_to`, everything up to that message from its sender is read at once.
pub async fn read(app: &App, caller: &Caller, args: Read) -> Result<(ReadAckEvent, bool)> {
    let id = match args.target {
        ReadTarget::UpTo(up_to) => {
            let ack = crate::conversations::read_up_to(app, caller.user, up_to).await?;
            return Ok((ack, true));
        }
        ReadTarget::One(id) => id,
    };
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
                outbox::push_to_user(app, sender, &delivered).await?;
            }
        }
        let receipt = ServerEvent::Read(ReadEvent {
            message_id: id,
            by: caller.user,
            read_at,
        });
        outbox::push_to_user(app, sender, &receipt).await?;
    }
    Ok((
        ReadAckEvent {
            message_id: id,
            read_at,
        },
        first_read,
    ))
}

/// `typing`: relayed to the recipient's connections.
pub async fn typing(app: &App, caller: &Caller, args: Typing) -> Result<()> {
    let to = args.to;
    if to == caller.user {
        return Err(ChatError::SelfMessage.into());
    }
    crate::realtime::phantom::note_real_typing(app, caller.user, to, args.typing).await?;
    let event = ServerEvent::Typing(TypingEvent {
        from: caller.user,
        typing: args.typing,
    });
    outbox::push_to_user(app, to, &event).await?;
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
    if matches!(event, ClientEvent::SendMessage(_) | ClientEvent::Typing(_)) {
        // Per-user send rate, counted for all of the user's connections on every instance.
        let key = format!("events:{}", caller.user);
        if let Some(retry_after) = limits::take(app, &key, app.config.events_per_user).await? {
            return Err(ChatError::EventRateLimited { retry_after }.into());
        }
    }
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
            let (ack, first_read) = read(app, caller, args).await?;
            Ok(Outcome {
                ack: serde_json::to_value(&ack).unwrap_or(Value::Null),
                reply: first_read.then_some(ServerEvent::ReadAck(ack)),
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
