//! Engine.IO / Socket.IO: the wire format (`codec`) and the server that runs it inside
//! stateless functions behind API Gateway (`server`).

pub mod codec;
pub mod server;

pub use codec::*;
