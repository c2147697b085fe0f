//! End-to-end tests, one binary: each test gets its own database on the shared
//! `secantusd-rs` and its own local gateway on port 0.

#![allow(clippy::unwrap_used)]

mod clients;
mod conformance;
mod conformance_polling;
mod conversations;
mod cors;
mod delivery;
mod experiments;
mod handlers;
mod limits;
mod load;

mod migrations_runner;
mod realtime;
mod recovery;
mod rest;
mod secrets;
mod sessions;
mod sms;
mod template;
mod web;
