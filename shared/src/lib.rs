//! The core of the chat service, shared by every Lambda function and the local gateway.
//!
//! Layout: `domain` (newtypes parsed at the edge), `error` (per-area errors and the one
//! public mapping), `config`, `app` (cold-start state), `store` (MongoDB documents), the
//! services `auth`, `users`, `chat`, `conversations`, `realtime`, the transports `http` (REST events),
//! `socketio` (Engine.IO/Socket.IO framing), `push` (@connections), `sms` (SNS) and `invoke` (async
//! Lambda invoke), `experiments`, `telemetry` and `lambda` (the runtime entry point).

pub mod api;
pub mod app;
pub mod auth;
pub mod chat;
pub mod config;
pub mod conversations;
pub mod domain;
pub mod error;
pub mod experiments;
pub mod http;
pub mod invoke;
pub mod lambda;
#[cfg(test)]
mod layers;
pub mod limits;
pub mod push;
pub mod realtime;
pub mod scheduler;
pub mod secrets;
pub mod sms;
pub mod socketio;
pub mod store;
pub mod task;
pub mod telemetry;
pub mod time;
pub mod users;
pub mod ws_event;

pub use app::App;
pub use error::{Error, Result};
