//! Engine.IO / Socket.IO for stateless functions: the wire format (`codec`), the server that
//! runs it one frame per invocation (`runtime`) through the [`runtime::Env`] trait, and an
//! in-memory `Env` (`memory`) for tests and fuzzing. Nothing here knows the chat, MongoDB or
//! AWS: this layer imports only `domain` (ids).

pub mod codec;
pub mod memory;
pub mod runtime;
#[cfg(test)]
mod tests;

pub use codec::*;
