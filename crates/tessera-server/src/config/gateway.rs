//! `UPSTREAMS`: the built-in reverse proxy's routes (G1).
//!
//! One entry per upstream, entries separated by commas, an entry's options by spaces:
//!
//! ```text
//! UPSTREAMS=/agent/=http://127.0.0.1:9000/ scope=agent:chat rate=60/minute, /tools/=http://10.0.0.7:8080/v1/ name=tools max_body=1048576 timeout=30
//! ```
//!
//! A request whose path starts with the prefix goes to the upstream with the prefix replaced
//! by the target's path (`/agent/chat?x=1` -> `http://127.0.0.1:9000/chat?x=1`). Options:
//! `name` (the assertion's `aud` and the metrics label; default: the prefix without its
//! slashes), `scope` (the scope a credential needs, from the fixed vocabulary; default
//! `agent:chat`), `rate` (a limit per caller on top of RATE_LIMIT_API, slash syntax:
//! `60/minute;1000/day`), `max_body` (bytes; default GATEWAY_MAX_BODY_BYTES), `timeout`
//! (seconds to wait for the upstream's response headers; default GATEWAY_RESPONSE_TIMEOUT_SECS).
//!
//! Prefixes may not shadow Tessera's own routes ([`RESERVED_PATHS`]); `/agent/` is allowed and
//! replaces the seed's echo `POST /agent/chat`. Targets are plain `http://` (a loopback or
//! private network hop): this build carries no TLS client.

use std::time::Duration;

use tessera_core::Scope;
use tessera_core::limits::RateLimitSpec;

/// The first path segments of Tessera's own routes, present and planned (forward auth, OAuth,
/// account pages): no upstream prefix may start with one or be a prefix of one. `/agent` is not
/// here: an upstream there replaces the echo route.
pub const RESERVED_PATHS: [&str; 20] = [
    "/register",
    "/login",
    "/refresh",
    "/logout",
    "/profile",
    "/sessions",
    "/api-keys",
    "/introspect",
    "/healthz",
    "/readyz",
    "/metrics",
    "/.well-known",
    "/demo",
    "/openapi.json",
    "/docs",
    "/auth",
    "/oauth",
    "/account",
    "/mfa",
    "/admin",
];

/// One upstream of the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The path prefix, starting and ending with `/` (`/agent/`).
    pub prefix: String,
    /// The name: the assertion's audience and the metrics label.
    pub name: String,
    /// `host:port` of the upstream.
    pub authority: String,
    /// The target's path, ending with `/`, that replaces the prefix.
    pub base_path: String,
    /// The scope a credential needs.
    pub scope: Scope,
    /// A per-caller limit for this upstream, on top of RATE_LIMIT_API.
    pub rate_limit: Option<RateLimitSpec>,
    /// Largest request body, in bytes.
    pub max_body_bytes: u64,
    /// How long to wait for the upstream's response headers.
    pub response_timeout: Duration,
}

impl Upstream {
    /// Whether `path` is this upstream's: the prefix itself, or the prefix without its
    /// trailing slash (`/agent`).
    pub fn matches(&self, path: &str) -> bool {
        path.starts_with(&self.prefix) || path == &self.prefix[..self.prefix.len() - 1]
    }

    /// The path and query on the upstream for a request's `path` and `query`, or `None` when
    /// the part after the prefix holds a dot segment (`..`, `.`, also percent-encoded or behind
    /// an encoded slash): it could climb out of the target's path on the upstream
    /// (`/tools/../admin` -> `/v1/../admin`).
    pub fn target_path(&self, path: &str, query: Option<&str>) -> Option<String> {
        let rest = path.get(self.prefix.len()..).unwrap_or("");
        if has_dot_segment(rest) {
            return None;
        }
        let mut target = format!("{}{rest}", self.base_path);
        if let Some(query) = query {
            target.push('?');
            target.push_str(query);
        }
        Some(target)
    }
}

/// Whether `path`, percent-decoded, has a `.` or `..` segment (split on `/` and `\\`).
fn has_dot_segment(path: &str) -> bool {
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                decoded.push(u8::try_from(high * 16 + low).unwrap_or(0));
                i += 3;
            }
            (byte, _, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    decoded
        .split(|b| *b == b'/' || *b == b'\\')
        .any(|segment| segment == b"." || segment == b"..")
}

/// The defaults an entry's options override.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamDefaults {
    /// GATEWAY_MAX_BODY_BYTES.
    pub max_body_bytes: u64,
    /// GATEWAY_RESPONSE_TIMEOUT_SECS.
    pub response_timeout: Duration,
}

/// Parses UPSTREAMS; the error says which entry and why.
pub fn parse_upstreams(text: &str, defaults: UpstreamDefaults) -> Result<Vec<Upstream>, String> {
    let mut upstreams: Vec<Upstream> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let upstream = parse_entry(entry, defaults).map_err(|why| format!("{entry:?}: {why}"))?;
        if let Some(other) = upstreams
            .iter()
            .find(|u| u.prefix.starts_with(&upstream.prefix) || upstream.prefix.starts_with(&u.prefix))
        {
            return Err(format!(
                "{entry:?}: prefix {} overlaps {}; give each upstream its own prefix",
                upstream.prefix, other.prefix
            ));
        }
        if upstreams.iter().any(|u| u.name == upstream.name) {
            return Err(format!("{entry:?}: name {:?} is used twice", upstream.name));
        }
        upstreams.push(upstream);
    }
    Ok(upstreams)
}

fn parse_entry(entry: &str, defaults: UpstreamDefaults) -> Result<Upstream, String> {
    let mut words = entry.split_whitespace();
    let route = words.next().ok_or("empty entry")?;
    let (prefix, target) = route
        .split_once('=')
        .ok_or("must be PREFIX=URL, e.g. /agent/=http://127.0.0.1:9000/")?;
    let prefix = parse_prefix(prefix)?;
    let (authority, base_path) = parse_target(target)?;
    let mut upstream = Upstream {
        name: prefix.trim_matches('/').replace('/', "-"),
        prefix,
        authority,
        base_path,
        scope: Scope::AgentChat,
        rate_limit: None,
        max_body_bytes: defaults.max_body_bytes,
        response_timeout: defaults.response_timeout,
    };
    for option in words {
        let (key, value) = option
            .split_once('=')
            .ok_or_else(|| format!("option {option:?} must be key=value"))?;
        match key {
            "name" => {
                let valid = !value.is_empty()
                    && value.len() <= 64
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
                if !valid {
                    return Err(format!("name {value:?}: 1-64 of a-z, 0-9, '-', '_', '.'"));
                }
                value.clone_into(&mut upstream.name);
            }
            "scope" => {
                upstream.scope = Scope::from_name(value).ok_or_else(|| {
                    let known: Vec<_> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                    format!("unknown scope {value:?}; one of {}", known.join(", "))
                })?;
            }
            "rate" => {
                let spec: RateLimitSpec = value.parse().map_err(|e| format!("rate {value:?}: {e}"))?;
                upstream.rate_limit = Some(spec);
            }
            "max_body" => {
                upstream.max_body_bytes = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=1 << 40).contains(n))
                    .ok_or_else(|| format!("max_body {value:?}: a number of bytes"))?;
            }
            "timeout" => {
                let secs: u64 = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=3600).contains(n))
                    .ok_or_else(|| format!("timeout {value:?}: seconds, 1 to 3600"))?;
                upstream.response_timeout = Duration::from_secs(secs);
            }
            _ => return Err(format!("unknown option {key:?} (name, scope, rate, max_body, timeout)")),
        }
    }
    if upstream.name.is_empty() {
        return Err("needs name=...".into());
    }
    Ok(upstream)
}

fn parse_prefix(prefix: &str) -> Result<String, String> {
    let plain = prefix.starts_with('/')
        && prefix.len() > 1
        && !prefix.contains("//")
        && !prefix.split('/').any(|s| s == ".." || s == ".")
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~'));
    if !plain {
        return Err(format!(
            "prefix {prefix:?} must be a plain path like /agent/ (not /, no '..', no query)"
        ));
    }
    let prefix = if prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    };
    let bare = &prefix[..prefix.len() - 1];
    if let Some(reserved) = RESERVED_PATHS
        .iter()
        .find(|r| bare == **r || bare.starts_with(&format!("{r}/")))
    {
        return Err(format!("prefix {prefix} would shadow Tessera's own {reserved}"));
    }
    Ok(prefix)
}

fn parse_target(target: &str) -> Result<(String, String), String> {
    let Some(rest) = target.strip_prefix("http://") else {
        return Err(format!(
            "target {target:?} must be http:// (this build has no TLS client: keep the hop on loopback or a private network)"
        ));
    };
    if rest.contains(['?', '#']) {
        return Err(format!("target {target:?} must not carry a query or fragment"));
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.contains('@') {
        return Err(format!("target {target:?} must not carry credentials"));
    }
    // host, host:port, [v6]:port: the characters of a DNS name or an address, and a port.
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') && (!host.contains(':') || host.ends_with(']')) => {
            (host, Some(port))
        }
        _ => (authority, None),
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'[' | b']' | b':'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if !host_ok || !port_ok {
        return Err(format!("target {target:?}: host[:port] expected after http://"));
    }
    let path_ok = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~' | b'%'));
    if !path_ok || path.split('/').any(|s| s == "..") {
        return Err(format!("target {target:?}: a plain path expected"));
    }
    let mut base_path = if path.is_empty() {
        "/".to_owned()
    } else {
        path.to_owned()
    };
    if !base_path.ends_with('/') {
        base_path.push('/');
    }
    Ok((authority.to_owned(), base_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: UpstreamDefaults = UpstreamDefaults {
        max_body_bytes: 1000,
        response_timeout: Duration::from_secs(60),
    };

    #[test]
    fn entries_parse_with_options_and_defaults() {
        let upstreams = parse_upstreams(
            "/agent/=http://127.0.0.1:9000/ rate=60/minute;1000/day, /tools=http://10.0.0.7:8080/v1 name=tools scope=profile:read max_body=5 timeout=3",
            DEFAULTS,
        )
        .unwrap();
        assert_eq!(upstreams.len(), 2);
        let agent = &upstreams[0];
        assert_eq!(
            (
                agent.prefix.as_str(),
                agent.name.as_str(),
                agent.authority.as_str(),
                agent.base_path.as_str()
            ),
            ("/agent/", "agent", "127.0.0.1:9000", "/")
        );
        assert_eq!(agent.scope, Scope::AgentChat);
        assert_eq!(agent.rate_limit.as_ref().unwrap().to_string(), "60/minute;1000/day");
        assert_eq!(agent.max_body_bytes, 1000);
        let tools = &upstreams[1];
        assert_eq!(
            (tools.prefix.as_str(), tools.name.as_str(), tools.base_path.as_str()),
            ("/tools/", "tools", "/v1/")
        );
        assert_eq!(tools.scope, Scope::ProfileRead);
        assert_eq!(
            (tools.max_body_bytes, tools.response_timeout),
            (5, Duration::from_secs(3))
        );
    }

    #[test]
    fn paths_map_onto_the_target() {
        let up = &parse_upstreams("/agent/=http://h:1/v1/", DEFAULTS).unwrap()[0];
        assert!(up.matches("/agent/chat") && up.matches("/agent/") && up.matches("/agent"));
        assert!(!up.matches("/agentx") && !up.matches("/agen") && !up.matches("/x/agent/"));
        assert_eq!(up.target_path("/agent/chat", Some("a=1")).unwrap(), "/v1/chat?a=1");
        assert_eq!(up.target_path("/agent", None).unwrap(), "/v1/");
        assert_eq!(up.target_path("/agent/", None).unwrap(), "/v1/");
        assert_eq!(up.target_path("/agent/a.b/..c/%2Fx", None).unwrap(), "/v1/a.b/..c/%2Fx");
        for climbing in [
            "/agent/../admin",
            "/agent/a/../../admin",
            "/agent/%2e%2e/admin",
            "/agent/%2E./admin",
            "/agent/a%2f..%2f..%2fadmin",
            "/agent/a%5c..%5cadmin",
            "/agent/..\\admin",
            "/agent/./x",
            "/agent/x/..",
        ] {
            assert_eq!(up.target_path(climbing, None), None, "{climbing}");
        }
    }

    #[test]
    fn bad_entries_are_refused_with_a_reason() {
        for bad in [
            "/=http://h:1/",
            "agent=http://h:1/",
            "/agent/../x/=http://h:1/",
            "/a//b/=http://h:1/",
            "/agent/=https://h:1/",
            "/agent/=ftp://h/",
            "/agent/=http://user:pw@h:1/",
            "/agent/=http://h:1/?q=1",
            "/agent/=not a url",
            "/agent/=http://",
            "/agent/=http://h:99999/",
            "/agent/=http://h:x/",
            "/agent/=http://h:1/a b/",
            "/agent/=http://h:1/../",
            "/agent/",
            "/agent/=http://h:1/ scope=nope",
            "/agent/=http://h:1/ rate=lots",
            "/agent/=http://h:1/ max_body=0",
            "/agent/=http://h:1/ timeout=0",
            "/agent/=http://h:1/ colour=blue",
            "/agent/=http://h:1/ name=a/b",
            "/login/=http://h:1/",
            "/auth/x/=http://h:1/",
            "/.well-known/=http://h:1/",
            "/metrics=http://h:1/",
            "/a/=http://h:1/, /a/b/=http://h:2/",
            "/a/=http://h:1/ name=x, /b/=http://h:2/ name=x",
        ] {
            assert!(parse_upstreams(bad, DEFAULTS).is_err(), "{bad}");
        }
        assert!(parse_upstreams("/loginx/=http://h:1/", DEFAULTS).is_ok());
        for good in [
            "http://h",
            "http://[::1]:8080/v1",
            "http://10.0.0.1:80",
            "http://agent.internal:9000/",
        ] {
            assert!(parse_upstreams(&format!("/a/={good}"), DEFAULTS).is_ok(), "{good}");
        }
        assert!(parse_upstreams("", DEFAULTS).unwrap().is_empty());
    }
}
