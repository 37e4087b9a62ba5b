//! Fuzz target `limits_and_csrf`: the two small parsers of untrusted or operator-supplied text.
//!
//! `RateLimitSpec::from_str` reads configuration (`RATE_LIMIT_LOGIN="5/minute"`) and must never
//! panic; whatever it accepts must print (`Display`) to a string that parses back to the same
//! spec, and printing must be stable. `CsrfKey::verify` reads a request header and must never
//! panic; for a fixed session, an input verifies if and only if it is exactly that session's
//! token. The input is also used as a session id: its own token must verify for it, and the
//! fixed session's token must not (unless the input is that session).
//!
//! Input that is not UTF-8 is skipped (both APIs take `&str`).

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tessera_core::csrf::CsrfKey;
use tessera_core::limits::RateLimitSpec;
use tessera_fuzz::{CSRF_SECRET, CSRF_SESSION as SESSION};

/// The CSRF key and the real token for [`SESSION`], built once.
static CSRF: LazyLock<(CsrfKey, String)> = LazyLock::new(|| {
    let key = CsrfKey::new(CSRF_SECRET).expect("32-byte key");
    let token = key.token_for(SESSION);
    (key, token)
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(spec) = text.parse::<RateLimitSpec>() {
        for limit in spec.limits() {
            assert!(limit.count >= 1 && limit.period_secs >= 1, "degenerate limit {limit:?} from {text:?}");
        }
        let printed = spec.to_string();
        let reparsed: RateLimitSpec = printed
            .parse()
            .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e}"));
        assert_eq!(reparsed, spec, "{text:?} printed as {printed:?}, which parses differently");
        assert_eq!(reparsed.to_string(), printed, "printing is not stable for {text:?}");
    }

    let (key, real) = &*CSRF;
    assert_eq!(key.verify(SESSION, text), text == real, "csrf verify disagrees for {text:?}");
    assert!(key.verify(text, &key.token_for(text)), "own token refused for session {text:?}");
    assert_eq!(key.verify(text, real), text == SESSION, "session {text:?} accepts another session's token");
    // Short input as key material: refused or accepted by length, never a panic.
    assert_eq!(CsrfKey::new(data).is_ok(), data.len() >= 32);
});
