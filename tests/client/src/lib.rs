//! The product's public API as a client sees it, written once for the end-to-end tests
//! (`tests/`) and the load generator and benchmarks (`bench/`):
//! - [`socket`]: raw WebSocket frames, and a small Socket.IO client over them (Engine.IO
//!   open, CONNECT with `auth: {token}`, pings answered, events in and out);
//! - [`rest`]: the REST login (`request_otp` + `verify`) and mobile numbers to log in with.
//!
//! Everything returns errors instead of panicking, so a load run can count failures; the
//! tests add their asserting conveniences on top.

pub mod rest;
pub mod socket;

pub use rest::{Session, login, random_mobile};
pub use socket::{Frame, RawWs, Socket, Stream};
