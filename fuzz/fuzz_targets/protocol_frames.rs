//! Frames from a client, text and binary, through the whole Engine.IO/Socket.IO runtime over
//! the in-memory environment with the official suites' application: a connection is opened,
//! then every input frame is handed to `runtime::frame` as API Gateway would, and a
//! heartbeat runs. Nothing may panic, whatever the frames.
//!
//! Input: frames separated by 0xFF; a frame starting with 0xFE is binary.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use shared::domain::ConnectionId;
use shared::socketio::memory::MemoryEnv;
use shared::socketio::runtime::{self, EngineConfig, Frame, SocketIo};
use shared::socketio::suite::SuiteApp;

const CFG: EngineConfig = EngineConfig {
    ping_interval: Duration::from_millis(300),
    ping_timeout: Duration::from_millis(200),
    max_payload: 1_000_000,
    connect_timeout: Duration::from_millis(1000),
    establish_wait: Duration::from_millis(0),
};

const APP: SuiteApp = SuiteApp {
    final_sessions: false,
    tokens: true,
};

fuzz_target!(|data: &[u8]| {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_time().build() else {
        return;
    };
    rt.block_on(async {
        let env = MemoryEnv::new(0);
        let Ok(c) = ConnectionId::parse("fuzz0=") else { return };
        if runtime::handshake(&env, &c, Some("4"), Some("websocket")).await.is_err() {
            return;
        }
        env.establish(&c);
        let _ = runtime::open(&env, &CFG, &c).await;
        for raw in data.split(|b| *b == 0xFF) {
            let frame = match raw.split_first() {
                Some((0xFE, rest)) => Frame::Binary(rest.to_vec()),
                _ => Frame::Text(String::from_utf8_lossy(raw).into_owned()),
            };
            // A closed connection gets no more frames from API Gateway (and sends to it
            // would wait out the establish window).
            let Some(state) = env.session(&c) else { break };
            let _ = runtime::frame(&env, &SocketIo(&APP), &c, &state, frame).await;
            let _ = env.take(&c);
        }
        let _ = runtime::heartbeat(&env, &CFG).await;
    });
});
