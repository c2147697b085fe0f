//! Socket event arguments (`send_message`, `typing`, `read`, anything else) as clients send
//! them: any event name with any JSON argument parses into a `ClientEvent` or an input
//! error, never a panic.
//!
//! Input: an event name, a NUL, then the argument's JSON.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::realtime::service::ClientEvent;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (name, arg) = text.split_once('\0').unwrap_or(("send_message", &text));
    let value = serde_json::from_str(arg).ok();
    let _ = ClientEvent::parse(name, value);
    for known in ["send_message", "typing", "read"] {
        let _ = ClientEvent::parse(known, serde_json::from_str(arg).ok());
    }
});
