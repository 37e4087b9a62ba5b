//! Login CSRF (issue #13, finding 5): a page on another site can submit a form to `/login` and
//! sign the victim's browser into the attacker's account (the response sets the session
//! cookies). Requests that set session cookies are refused when the browser says they come
//! from another site: an `Origin` that is neither this server's own nor a CORS_ORIGINS entry,
//! or, without `Origin`, `Sec-Fetch-Site: cross-site`. Clients that send neither header (API
//! clients, curl, the seed's Python clients) are not affected.

use super::App;
use super::error::Error;

/// What the browser said about where a request comes from.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestOrigin<'a> {
    /// The `Origin` header.
    pub origin: Option<&'a str>,
    /// The `Sec-Fetch-Site` header.
    pub fetch_site: Option<&'a str>,
    /// The `Host` header (this server's name as the client addressed it).
    pub host: Option<&'a str>,
    /// The `X-Forwarded-Host` header: behind a reverse proxy that rewrites `Host`, the name the
    /// browser addressed. Trusting it here is safe: a cross-site page cannot make the victim's
    /// browser send a header of its choosing without a CORS preflight, which is refused.
    pub forwarded_host: Option<&'a str>,
}

/// The `host[:port]` of an origin (`scheme://host[:port]`), lower-cased.
fn origin_authority(origin: &str) -> Option<String> {
    let (_, rest) = origin.split_once("://")?;
    let authority = rest.split('/').next()?;
    (!authority.is_empty()).then(|| authority.to_ascii_lowercase())
}

/// Whether a request that would set session cookies comes from another site.
pub fn is_cross_site(request: RequestOrigin<'_>, allowed_origins: &[String]) -> bool {
    match request.origin {
        Some(origin) => {
            let origin = origin.trim();
            if allowed_origins
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(origin))
            {
                return false;
            }
            // "null" (sandboxed frames, data: URLs, some redirects) is never this site.
            let Some(authority) = origin_authority(origin) else {
                return true;
            };
            let forwarded = request.forwarded_host.into_iter().flat_map(|value| value.split(','));
            !request
                .host
                .into_iter()
                .chain(forwarded)
                .any(|host| host.trim().eq_ignore_ascii_case(&authority))
        }
        None => request
            .fetch_site
            .is_some_and(|site| site.trim().eq_ignore_ascii_case("cross-site")),
    }
}

impl App {
    /// Refuses a cookie-setting request from another site (login CSRF), logging it.
    pub fn check_same_site(&self, request: RequestOrigin<'_>, ip: &str) -> Result<(), Error> {
        if is_cross_site(request, &self.config.cors_origins) {
            self.metrics.csrf_failures.inc();
            tracing::warn!(
                event = "csrf_failure",
                ip_address = %ip,
                reason = "cross_site",
                origin = request.origin.unwrap_or_default(),
                "cross-site request to a route that sets session cookies"
            );
            return Err(Error::CrossSite);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(origin: Option<&'a str>, fetch_site: Option<&'a str>) -> RequestOrigin<'a> {
        RequestOrigin {
            origin,
            fetch_site,
            host: Some("auth.example.com"),
            forwarded_host: None,
        }
    }

    #[test]
    fn api_clients_without_browser_headers_pass() {
        assert!(!is_cross_site(request(None, None), &[]));
    }

    #[test]
    fn the_servers_own_origin_passes_and_others_are_refused() {
        let allowed = vec!["https://app.example.com".to_owned()];
        let cases = [
            (Some("https://auth.example.com"), None, false),
            (Some("https://AUTH.example.com"), Some("same-origin"), false),
            (Some("https://app.example.com"), Some("same-site"), false),
            (Some("https://evil.example"), Some("cross-site"), true),
            (Some("https://evil.example"), None, true),
            (Some("https://sub.example.com"), Some("same-site"), true),
            (Some("null"), Some("cross-site"), true),
            (Some("null"), None, true),
            (None, Some("cross-site"), true),
            (None, Some("same-origin"), false),
            (None, Some("none"), false),
        ];
        for (origin, site, refused) in cases {
            assert_eq!(
                is_cross_site(request(origin, site), &allowed),
                refused,
                "{origin:?} {site:?}"
            );
        }
    }

    #[test]
    fn a_different_port_is_another_origin() {
        let with_port = RequestOrigin {
            origin: Some("http://127.0.0.1:9999"),
            fetch_site: None,
            host: Some("127.0.0.1:8000"),
            forwarded_host: None,
        };
        assert!(is_cross_site(with_port, &[]));
    }

    #[test]
    fn behind_a_proxy_that_rewrites_host_the_forwarded_host_counts() {
        // nginx's default `proxy_pass` sends `Host: 127.0.0.1:8000`; the browser addressed
        // auth.example.com, which the proxy passes as X-Forwarded-Host.
        let proxied = |forwarded_host| RequestOrigin {
            origin: Some("https://auth.example.com"),
            fetch_site: Some("same-origin"),
            host: Some("127.0.0.1:8000"),
            forwarded_host,
        };
        assert!(!is_cross_site(proxied(Some("auth.example.com")), &[]));
        assert!(!is_cross_site(proxied(Some("auth.example.com, 127.0.0.1")), &[]));
        assert!(is_cross_site(proxied(Some("other.example")), &[]));
        assert!(is_cross_site(proxied(None), &[]));
    }
}
