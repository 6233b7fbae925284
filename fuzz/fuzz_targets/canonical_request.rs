//! From raw HTTP request parts to the canonical request: never a panic, and
//! the canonical form is a fixed point (its HTTP parts parse back to it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tresor_request::{RawRequest, Request};

const METHODS: [&str; 10] = [
    "GET", "HEAD", "LIST", "DELETE", "PUT", "POST", "PATCH", "OPTIONS", "get", "SCAN",
];
const CONTENT_TYPES: [&str; 4] = [
    "application/json",
    "application/merge-patch+json",
    "application/x-www-form-urlencoded",
    "text/plain; charset=utf-8",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    // Fields separated by 0xFF, a byte no UTF-8 text holds.
    let mut fields = rest.split(|b| *b == 0xFF);
    let mut text = || fields.next().map(String::from_utf8_lossy);
    let path = text().unwrap_or_default();
    let query = text();
    let token = text();
    let wrap_ttl = text();
    let body: Vec<u8> = rest
        .rsplit(|b| *b == 0xFF)
        .next()
        .unwrap_or_default()
        .to_vec();
    let tokens: Vec<&str> = token.iter().map(|t| t.as_ref()).collect();
    let raw = RawRequest {
        method: METHODS[usize::from(selector) % METHODS.len()],
        path: &path,
        query: query.as_deref(),
        content_type: Some(CONTENT_TYPES[usize::from(selector >> 4) % CONTENT_TYPES.len()]),
        body: &body,
        vault_token: &tokens,
        authorization: &[],
        wrap_ttl: wrap_ttl.as_deref().filter(|_| selector & 0x08 != 0),
    };
    if let Ok(request) = Request::from_raw(&raw) {
        let owned = request.to_raw();
        let token: Vec<&str> = owned.token.iter().map(String::as_str).collect();
        assert_eq!(Request::from_raw(&owned.as_raw(&token)), Ok(request));
    }
});
