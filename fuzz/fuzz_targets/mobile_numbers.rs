//! Phone numbers as typed: any text is an E.164 number or `invalid_mobile`, and a number
//! that parses parses again to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::domain::Mobile;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(m) = Mobile::parse(&text) {
        let again = Mobile::parse(m.as_str()).map(|n| n.as_str().to_owned());
        assert_eq!(again.as_deref(), Ok(m.as_str()));
        assert!(m.as_str().starts_with('+') && m.as_str().len() <= 16);
    }
});
