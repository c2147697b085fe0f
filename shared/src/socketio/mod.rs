//! Engine.IO / Socket.IO for stateless functions: the wire format (`codec`), the server that
//! runs it one frame per invocation (`runtime`) through the [`runtime::Env`] trait, and an
//! in-memory `Env` (`memory`) and the official suites' application (`suite`) for tests,
//! fuzzing and the conformance server. Nothing here knows the chat, MongoDB or
//! AWS: this layer imports only `domain` (ids).

pub mod codec;
pub mod memory;
pub mod runtime;
pub mod suite;
#[cfg(test)]
mod tests;

pub use codec::*;
