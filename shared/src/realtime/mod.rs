//! Real time over API Gateway WebSockets: connection records, the Socket.IO shim and the
//! plain-JSON routes (`ws`), the chat events behind them (`service`), outgoing events and
//! their framing (`events`), fan-out and ordered delivery (`fanout`), phantom typing, and
//! Engine.IO long-polling over the HTTP API (`polling`, `poll_routes`).

pub mod connections;
pub mod events;
pub mod fanout;
pub mod outbox;
pub mod phantom;
pub mod poll_routes;
pub mod polling;
pub mod recovery;
pub mod service;
pub mod sio_env;
pub mod ws;
