//! The two token cookies (S1), written exactly, and read back from the `Cookie` header.
//!
//! `access_token`: HttpOnly, Secure (COOKIE_SECURE), SameSite (COOKIE_SAMESITE), Path=/,
//! Max-Age = access lifetime. `refresh_token`: the same but Path=/refresh, so the browser sends
//! it to the refresh endpoint only and every other request carries one token less.
//!
//! With COOKIE_PREFIXES on (the default when COOKIE_SECURE is true) the names carry the
//! browser-enforced prefixes: `__Host-access_token` (only set by this host over HTTPS, Path=/,
//! no Domain: a sibling subdomain cannot plant or overwrite it) and `__Secure-refresh_token`
//! (only set over HTTPS; its Path=/refresh rules out `__Host-`). Only the configured names are
//! read, so an unprefixed cookie tossed in by a subdomain is ignored.
//!
//! With COOKIE_DOMAIN (G2) both cookies carry `Domain=<domain>`, so every subdomain behind
//! forward auth sees the session; the `__Host-` prefix forbids that, so configuration refuses
//! COOKIE_PREFIXES=on with it (and `auto` then means off).

use axum::http::{HeaderMap, HeaderValue, header};

use crate::config::Config;

/// The access cookie's plain name (the seed's).
pub const ACCESS_COOKIE: &str = "access_token";
/// The refresh cookie's plain name (the seed's).
pub const REFRESH_COOKIE: &str = "refresh_token";
/// The access cookie's name with COOKIE_PREFIXES on.
pub const HOST_ACCESS_COOKIE: &str = "__Host-access_token";
/// The refresh cookie's name with COOKIE_PREFIXES on.
pub const SECURE_REFRESH_COOKIE: &str = "__Secure-refresh_token";
/// The refresh cookie's path.
pub const REFRESH_PATH: &str = "/refresh";

/// The names of the two cookies under a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieNames {
    /// The access cookie.
    pub access: &'static str,
    /// The refresh cookie.
    pub refresh: &'static str,
}

impl CookieNames {
    /// The names COOKIE_PREFIXES selects.
    pub fn for_config(config: &Config) -> CookieNames {
        if config.cookie_prefixes {
            CookieNames {
                access: HOST_ACCESS_COOKIE,
                refresh: SECURE_REFRESH_COOKIE,
            }
        } else {
            CookieNames {
                access: ACCESS_COOKIE,
                refresh: REFRESH_COOKIE,
            }
        }
    }
}

fn cookie(config: &Config, name: &str, value: &str, path: &str, max_age: i64) -> Option<HeaderValue> {
    let secure = if config.cookie_secure { "; Secure" } else { "" };
    // COOKIE_DOMAIN (G2): shared by the subdomains behind forward auth. Configuration refuses
    // it together with the `__Host-` prefix, which forbids `Domain`.
    let domain = config
        .cookie_domain
        .as_deref()
        .map_or_else(String::new, |domain| format!("; Domain={domain}"));
    let text = format!(
        "{name}={value}; HttpOnly{secure}; SameSite={}{domain}; Path={path}; Max-Age={max_age}",
        config.cookie_samesite.as_str()
    );
    // Token values are base64url and dots, always valid header text.
    HeaderValue::from_str(&text).ok()
}

/// `Set-Cookie` values for a fresh token pair.
pub fn set_tokens(config: &Config, access: &str, refresh: &str) -> Vec<HeaderValue> {
    let names = CookieNames::for_config(config);
    [
        cookie(config, names.access, access, "/", config.access_ttl_secs),
        cookie(config, names.refresh, refresh, REFRESH_PATH, config.refresh_ttl_secs),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// `Set-Cookie` values that delete both cookies (same name, path and attributes, Max-Age=0).
pub fn clear_tokens(config: &Config) -> Vec<HeaderValue> {
    let names = CookieNames::for_config(config);
    [
        cookie(config, names.access, "", "/", 0),
        cookie(config, names.refresh, "", REFRESH_PATH, 0),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// A header map with the `Set-Cookie` lines of [`clear_tokens`].
pub fn clear_tokens_headers(config: &Config) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for cookie in clear_tokens(config) {
        headers.append(header::SET_COOKIE, cookie);
    }
    headers
}

/// The value of cookie `name` from the request's `Cookie` headers. A name sent twice is
/// ambiguous (cookie tossing from a sibling subdomain can add a second one), so it is refused.
pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut found = None;
    for header_value in headers.get_all(header::COOKIE) {
        let Ok(text) = header_value.to_str() else { continue };
        for pair in text.split(';') {
            let Some((key, value)) = pair.trim().split_once('=') else {
                continue;
            };
            if key.trim() == name {
                if found.is_some() {
                    return None;
                }
                found = Some(value.trim().trim_matches('"').to_owned());
            }
        }
    }
    found.filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_carry_the_exact_attributes() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests(dir.path());
        config.cookie_secure = true;
        config.cookie_prefixes = false;
        let set = set_tokens(&config, "a.b.c", "d.e.f");
        assert_eq!(
            set[0],
            "access_token=a.b.c; HttpOnly; Secure; SameSite=Lax; Path=/; Max-Age=900"
        );
        assert_eq!(
            set[1],
            "refresh_token=d.e.f; HttpOnly; Secure; SameSite=Lax; Path=/refresh; Max-Age=604800"
        );
        let clear = clear_tokens(&config);
        assert_eq!(
            clear[0],
            "access_token=; HttpOnly; Secure; SameSite=Lax; Path=/; Max-Age=0"
        );
    }

    #[test]
    fn prefixed_cookies_carry_the_host_and_secure_prefixes() {
        // Arrange
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests(dir.path());
        config.cookie_secure = true;
        config.cookie_prefixes = true;
        // Act
        let set = set_tokens(&config, "a.b.c", "d.e.f");
        // Assert: __Host- needs Secure, Path=/ and no Domain; __Secure- needs Secure.
        assert_eq!(
            set[0],
            "__Host-access_token=a.b.c; HttpOnly; Secure; SameSite=Lax; Path=/; Max-Age=900"
        );
        assert_eq!(
            set[1],
            "__Secure-refresh_token=d.e.f; HttpOnly; Secure; SameSite=Lax; Path=/refresh; Max-Age=604800"
        );
        assert_eq!(
            CookieNames::for_config(&config),
            CookieNames {
                access: HOST_ACCESS_COOKIE,
                refresh: SECURE_REFRESH_COOKIE
            }
        );
    }

    #[test]
    fn cookie_domain_adds_the_domain_attribute_to_both_cookies() {
        // Arrange
        let dir = tempfile::tempdir().unwrap();
        let mut vars = crate::config::Vars::new();
        vars.insert("DATA_DIR".into(), dir.path().display().to_string());
        vars.insert("COOKIE_DOMAIN".into(), "example.com".into());
        let config = Config::from_vars(&vars).unwrap();
        // Act
        let set = set_tokens(&config, "a.b.c", "d.e.f");
        let clear = clear_tokens(&config);
        // Assert: no `__Host-` name (it forbids Domain), Domain on setting and clearing.
        assert_eq!(
            set[0],
            "access_token=a.b.c; HttpOnly; Secure; SameSite=Lax; Domain=example.com; Path=/; Max-Age=900"
        );
        assert_eq!(
            set[1],
            "refresh_token=d.e.f; HttpOnly; Secure; SameSite=Lax; Domain=example.com; Path=/refresh; Max-Age=604800"
        );
        assert_eq!(
            clear[1],
            "refresh_token=; HttpOnly; Secure; SameSite=Lax; Domain=example.com; Path=/refresh; Max-Age=0"
        );
    }

    #[test]
    fn reading_finds_the_named_cookie_and_refuses_duplicates() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; access_token=tok; b=2"));
        assert_eq!(read(&headers, "access_token").as_deref(), Some("tok"));
        assert_eq!(read(&headers, "missing"), None);
        headers.append(header::COOKIE, HeaderValue::from_static("access_token=other"));
        assert_eq!(read(&headers, "access_token"), None);
    }
}
