//! REST input as API Gateway hands it over: a request body (JSON, any bytes) read into every
//! body type the routes take, and query strings into the history and conversation-list
//! queries, the token header. Each is a value or a clear input error, never a panic.
//!
//! Input: the body, a NUL, then a query string.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::api::{RequestOtpBody, StartConversationBody, UpdateProfileBody, VerifyBody};
use shared::chat::HistoryQuery;
use shared::conversations::ListQuery;
use shared::http::{Input, parse_authorization};

fuzz_target!(|data: &[u8]| {
    let (body, query) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let query = String::from_utf8_lossy(query);
    let uri = format!("https://api.example.com/x?{query}");
    let Ok(req) = lambda_http::http::Request::builder()
        .uri(uri.as_str())
        .header("authorization", String::from_utf8_lossy(body).chars().take(200).collect::<String>().replace(['\r', '\n'], ""))
        .body(lambda_http::Body::Binary(body.to_vec()))
    else {
        return;
    };
    let input = Input::new(&req);
    let _ = input.json::<RequestOtpBody>();
    let _ = input.json::<VerifyBody>();
    let _ = input.json::<UpdateProfileBody>();
    let _ = input.json::<StartConversationBody>();
    let _ = input.token();
    let pairs: Vec<(String, String)> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let _ = HistoryQuery::parse(get("limit"), get("before"), get("order"));
    let _ = ListQuery::parse(get("limit"), get("before"));
    let _ = parse_authorization(&query);
});
