//! Forward auth (G2) decisions, without I/O: which return URLs a sign-in redirect may carry
//! ([`Domains`], [`AbsoluteUrl`]), and which role or scope a host and path need ([`Rules`]).
//!
//! A reverse proxy (nginx `auth_request`, Caddy `forward_auth`, Traefik `forwardAuth`, Envoy
//! `ext_authz`) asks Tessera about each request it receives; the HTTP layer turns the proxy's
//! headers into an [`AbsoluteUrl`] and asks this module. Two decisions live here:
//!
//! - **No open redirect.** A browser without a session is sent to the sign-in page with
//!   `rd=<the URL it wanted>`, so it can come back after signing in. The sign-in page follows
//!   `rd`, so an attacker who could choose it would get a trusted page that forwards to their
//!   site. [`AbsoluteUrl::parse`] is deliberately narrower than the WHATWG URL parser: only
//!   `http`/`https`, ASCII letters, digits, dots and hyphens in the host, no userinfo (`@`), no
//!   backslash, no percent sign in the authority, no whitespace or control characters anywhere.
//!   Whatever it accepts, every browser reads with the same host, so the host check in
//!   [`Domains::allows`] is the host the browser will visit.
//! - **Rules.** `GATEWAY_RULES` maps a host (or `*`) and a path prefix to a required role or
//!   scope; the first matching rule decides. Paths are normalised before matching
//!   ([`normalize_path`]: percent-decoding, dot segments, empty segments, `;` parameters), so
//!   `/%61dmin/`, `/x/../admin/` and `//admin/` cannot slip past a rule for `/admin/`. The
//!   normalisation may make a rule match more than the upstream would serve under that prefix,
//!   never less.

use std::fmt;

use crate::scope::{Scope, ScopeSet, is_valid_role};

/// Longest URL accepted from a proxy or as a return URL, in bytes.
pub const MAX_URL_LEN: usize = 8192;

/// Why a URL, a domain list or a rule list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// Over [`MAX_URL_LEN`].
    #[error("URL too long")]
    TooLong,
    /// A character outside printable ASCII, a space or a backslash.
    #[error("URL has a forbidden character")]
    ForbiddenCharacter,
    /// Not `http://` or `https://`.
    #[error("URL must start with http:// or https://")]
    Scheme,
    /// Userinfo, a bad host or a bad port.
    #[error("URL authority must be a host name and an optional port")]
    Authority,
    /// A request target (`X-Forwarded-Uri`, Envoy's path) that does not start with `/`.
    #[error("request target must start with /")]
    Target,
    /// A `%` not followed by two hex digits, or an escape decoding to a control character.
    #[error("path has a malformed percent escape")]
    Escape,
    /// A domain of `GATEWAY_DOMAINS` that is not a host name.
    #[error("{0:?} is not a domain name (like example.com or http://dev.example.com)")]
    Domain(String),
    /// A rule of `GATEWAY_RULES` that does not follow the syntax.
    #[error("{0:?} is not a rule (like api.example.com/admin/=role:admin or */agent/=scope:agent:chat)")]
    Rule(String),
    /// A rule naming a scope outside the vocabulary or an invalid role name.
    #[error("{0:?}: unknown requirement (role:<name>, scope:<scope> or authenticated)")]
    Requirement(String),
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlScheme {
    /// `http`.
    Http,
    /// `https`.
    Https,
}

impl UrlScheme {
    /// The scheme's name.
    pub fn as_str(self) -> &'static str {
        match self {
            UrlScheme::Http => "http",
            UrlScheme::Https => "https",
        }
    }

    /// The scheme of a name (`X-Forwarded-Proto`), any case.
    pub fn from_name(name: &str) -> Option<UrlScheme> {
        if name.eq_ignore_ascii_case("https") {
            Some(UrlScheme::Https)
        } else if name.eq_ignore_ascii_case("http") {
            Some(UrlScheme::Http)
        } else {
            None
        }
    }
}

/// An absolute `http`/`https` URL in the strict form described in the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsoluteUrl {
    /// `http` or `https`.
    pub scheme: UrlScheme,
    /// The host, lower-cased ASCII letters, digits, dots and hyphens.
    pub host: String,
    /// The port, when one was written.
    pub port: Option<u16>,
    /// Path, query and fragment as written: empty or starting with `/`, `?` or `#`.
    pub rest: String,
}

/// Whether `host` is a DNS name (or dotted IPv4 address) in ASCII: labels of 1 to 63 letters,
/// digits and hyphens, not starting or ending with a hyphen, 253 bytes at most.
fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Splits `host[:port]`; the host must be a host name, the port 1 to 65535.
pub fn parse_authority(authority: &str) -> Result<(String, Option<u16>), GatewayError> {
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => {
            let is_digits = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| is_digits && *p != 0)
                .ok_or(GatewayError::Authority)?;
            (host, Some(port))
        }
        None => (authority, None),
    };
    if !is_host_name(host) {
        return Err(GatewayError::Authority);
    }
    Ok((host.to_ascii_lowercase(), port))
}

impl AbsoluteUrl {
    /// Parses an absolute URL strictly (see the module documentation).
    pub fn parse(text: &str) -> Result<AbsoluteUrl, GatewayError> {
        if text.len() > MAX_URL_LEN {
            return Err(GatewayError::TooLong);
        }
        // Printable ASCII only: no space, tab, CR, LF (browsers drop tabs and newlines inside a
        // URL, so `https://ev\nil.com` would be read differently), no non-ASCII (homographs),
        // and no backslash (browsers read `\` as `/` in http URLs: `https://a.com\@evil.com`).
        if !text.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'\\') {
            return Err(GatewayError::ForbiddenCharacter);
        }
        let (scheme, after) = text.split_once("://").ok_or(GatewayError::Scheme)?;
        let scheme = UrlScheme::from_name(scheme).ok_or(GatewayError::Scheme)?;
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let (authority, rest) = after.split_at(end);
        // `@` would start userinfo (`https://good.com@evil.com`), `%` an escaped host.
        if authority.contains(['@', '%']) {
            return Err(GatewayError::Authority);
        }
        let (host, port) = parse_authority(authority)?;
        Ok(AbsoluteUrl {
            scheme,
            host,
            port,
            rest: rest.to_owned(),
        })
    }

    /// The URL of a request as a proxy describes it: `X-Forwarded-Proto`, `-Host` and `-Uri`
    /// (the request target: a path with its query, starting with `/`).
    pub fn from_parts(scheme: &str, authority: &str, uri: &str) -> Result<AbsoluteUrl, GatewayError> {
        let scheme = UrlScheme::from_name(scheme.trim()).ok_or(GatewayError::Scheme)?;
        let uri = if uri.is_empty() { "/" } else { uri };
        if !uri.starts_with('/') {
            return Err(GatewayError::Target);
        }
        let authority = authority.trim();
        // The host header names a host and port, nothing else: `a.com/admin` must not move
        // part of the path into the authority.
        if authority.contains(['/', '?', '#']) {
            return Err(GatewayError::Authority);
        }
        AbsoluteUrl::parse(&format!("{}://{authority}{uri}", scheme.as_str()))
    }

    /// The path, without query and fragment (`/` when empty).
    pub fn path(&self) -> &str {
        let end = self.rest.find(['?', '#']).unwrap_or(self.rest.len());
        match &self.rest[..end] {
            "" => "/",
            path => path,
        }
    }

    /// `scheme://host[:port]`.
    pub fn origin(&self) -> String {
        match self.port {
            Some(port) => format!("{}://{}:{port}", self.scheme.as_str(), self.host),
            None => format!("{}://{}", self.scheme.as_str(), self.host),
        }
    }
}

impl fmt::Display for AbsoluteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.origin(), self.rest)
    }
}

/// One entry of `GATEWAY_DOMAINS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedDomain {
    /// The domain, lower-cased: itself and every subdomain are allowed.
    pub domain: String,
    /// Whether `http://` return URLs are allowed too (the entry was written `http://...`).
    pub allow_http: bool,
}

/// The domains a return URL (`rd`) may point to (`GATEWAY_DOMAINS`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Domains(pub Vec<AllowedDomain>);

impl Domains {
    /// Parses a comma list: `example.com` (https only) or `http://dev.example.com` (http
    /// allowed too; `https://example.com` is the same as `example.com`). Each entry covers the
    /// domain and its subdomains.
    pub fn parse(text: &str) -> Result<Domains, GatewayError> {
        let mut domains = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (allow_http, domain) = if let Some(rest) = entry.strip_prefix("http://") {
                (true, rest)
            } else {
                (false, entry.strip_prefix("https://").unwrap_or(entry))
            };
            let domain = domain.strip_suffix('/').unwrap_or(domain);
            if !is_host_name(domain) {
                return Err(GatewayError::Domain(entry.to_owned()));
            }
            domains.push(AllowedDomain {
                domain: domain.to_ascii_lowercase(),
                allow_http,
            });
        }
        Ok(Domains(domains))
    }

    /// Whether a browser may be sent back to `url`: its host is a listed domain or one of its
    /// subdomains (on a dot boundary: `evilexample.com` is not under `example.com`), over
    /// https, or over http when that domain was listed with `http://`.
    pub fn allows(&self, url: &AbsoluteUrl) -> bool {
        self.0.iter().any(|allowed| {
            let host_matches = url.host == allowed.domain
                || url
                    .host
                    .strip_suffix(allowed.domain.as_str())
                    .is_some_and(|head| head.ends_with('.'));
            host_matches && (url.scheme == UrlScheme::Https || allowed.allow_http)
        })
    }

    /// Whether no domain is listed (no return URL is ever accepted).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Domains {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries: Vec<String> = self
            .0
            .iter()
            .map(|d| {
                if d.allow_http {
                    format!("http://{}", d.domain)
                } else {
                    d.domain.clone()
                }
            })
            .collect();
        f.write_str(&entries.join(","))
    }
}

/// Where a hosted page (C4: `/signin?return_to=`) may send the browser once it is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReturnTarget {
    /// A path on Tessera's own origin: starts with exactly one `/`.
    Path(String),
    /// An absolute URL on a domain of `GATEWAY_DOMAINS`.
    Absolute(AbsoluteUrl),
}

impl ReturnTarget {
    /// The target as the browser should be given it.
    pub fn as_location(&self) -> String {
        match self {
            ReturnTarget::Path(path) => path.clone(),
            ReturnTarget::Absolute(url) => url.to_string(),
        }
    }
}

/// Whether a same-origin path is one every browser reads as a path on this origin. The
/// whole text must be printable ASCII without `\` (browsers read `\` as `/`, and drop tabs and
/// newlines, so `/\evil.com` and `/\t/evil.com` would become `//evil.com`); it must start with
/// one `/` and not two (`//evil.com` is a network-path reference to another host). The same
/// checks hold after percent-decoding, so `/%2F%2Fevil.com` or `/%5Cevil.com` are refused even
/// though browsers would not decode them (a server behind may).
fn is_local_path(text: &str) -> bool {
    fn is_plain(text: &str) -> bool {
        text.starts_with('/')
            && !text.starts_with("//")
            && text.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'\\')
    }
    if !is_plain(text) {
        return false;
    }
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(byte) = hex else { return false };
            decoded.push(byte);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    // One round of decoding, then the same rules (non-ASCII letters may appear once decoded);
    // a second round (`%252F`) decodes to `%2F`, which the check above saw as plain text.
    decoded.starts_with(b"/")
        && !decoded.starts_with(b"//")
        && !decoded.iter().any(|&b| b == b'\\' || b < 0x20 || b == 0x7f)
}

/// Judges a return URL given to a hosted page (C4), without I/O: a same-origin path (see
/// [`ReturnTarget::Path`]) or an absolute `https` URL (or `http` where the entry says so) whose
/// host `domains` lists, parsed as strictly as forward auth's `rd` ([`AbsoluteUrl::parse`]:
/// no userinfo, no backslash, no escaped host, no whitespace or control character). Anything
/// else (`//evil.com`, `/\evil.com`, `javascript:`, `data:`, an unlisted host) is `None`, and the
/// page falls back to its default.
pub fn return_target(raw: &str, domains: &Domains) -> Option<ReturnTarget> {
    if raw.is_empty() || raw.len() > MAX_URL_LEN {
        return None;
    }
    if raw.starts_with('/') {
        return is_local_path(raw).then(|| ReturnTarget::Path(raw.to_owned()));
    }
    let url = AbsoluteUrl::parse(raw).ok()?;
    domains.allows(&url).then_some(ReturnTarget::Absolute(url))
}

/// The sign-in URL for a browser that wanted `original`: `signin` with `rd=<original>` added
/// to its query when `domains` allows `original`, else `signin` unchanged (never a redirect
/// back to a host nobody listed).
pub fn signin_location(signin: &AbsoluteUrl, original: &AbsoluteUrl, domains: &Domains) -> String {
    let base = signin.to_string();
    if !domains.allows(original) {
        return base;
    }
    let (before_fragment, fragment) = match base.split_once('#') {
        Some((head, fragment)) => (head.to_owned(), format!("#{fragment}")),
        None => (base, String::new()),
    };
    let separator = if before_fragment.contains('?') { '&' } else { '?' };
    format!(
        "{before_fragment}{separator}rd={}{fragment}",
        percent_encode_component(&original.to_string())
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The path as rules see it: percent escapes decoded, `\` read as `/`, `;` parameters cut from
/// each segment, empty and `.` segments dropped, `..` applied, a trailing `/` kept. The result
/// starts with `/`. A malformed escape, or one decoding to a control character, is an error.
pub fn normalize_path(raw: &str) -> Result<String, GatewayError> {
    let mut bytes = Vec::with_capacity(raw.len());
    let raw_bytes = raw.as_bytes();
    let mut i = 0;
    while i < raw_bytes.len() {
        let byte = raw_bytes[i];
        if byte == b'%' {
            let hex = raw.get(i + 1..i + 3).ok_or(GatewayError::Escape)?;
            let value = u8::from_str_radix(hex, 16).map_err(|_| GatewayError::Escape)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(GatewayError::Escape);
            }
            bytes.push(value);
            i += 3;
        } else {
            bytes.push(byte);
            i += 1;
        }
    }
    if bytes.iter().any(|b| *b < 0x20 || *b == 0x7f) {
        return Err(GatewayError::Escape);
    }
    let decoded = String::from_utf8_lossy(&bytes).replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded.split('/') {
        let segment = segment.split(';').next().unwrap_or_default();
        trailing_slash = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut path = format!("/{}", segments.join("/"));
    if trailing_slash && !segments.is_empty() {
        path.push('/');
    }
    Ok(path)
}

/// Which hosts a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `*`: every host.
    Any,
    /// `api.example.com`: this host only.
    Exact(String),
    /// `*.example.com`: every subdomain of the domain (not the domain itself).
    Subdomains(String),
}

impl HostPattern {
    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(exact) => host == exact,
            HostPattern::Subdomains(domain) => host
                .strip_suffix(domain.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }
}

/// What a rule requires of the caller, beyond being authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `authenticated`: any authenticated caller (to exempt a path from a later rule).
    Authenticated,
    /// `role:<name>`: the user holds this role.
    Role(String),
    /// `scope:<scope>`: the credential's scopes grant this scope (`*` grants all).
    Scope(Scope),
}

impl Requirement {
    /// Parses `authenticated`, `role:<name>` or `scope:<scope>`.
    pub fn parse(text: &str) -> Result<Requirement, GatewayError> {
        let refused = || GatewayError::Requirement(text.to_owned());
        if text == "authenticated" {
            Ok(Requirement::Authenticated)
        } else if let Some(role) = text.strip_prefix("role:") {
            is_valid_role(role)
                .then(|| Requirement::Role(role.to_owned()))
                .ok_or_else(refused)
        } else if let Some(scope) = text.strip_prefix("scope:") {
            Scope::from_name(scope).map(Requirement::Scope).ok_or_else(refused)
        } else {
            Err(refused())
        }
    }

    /// Whether a caller with these roles and scopes meets the requirement.
    pub fn is_met_by<S: AsRef<str>>(&self, roles: &[S], scopes: ScopeSet) -> bool {
        match self {
            Requirement::Authenticated => true,
            Requirement::Role(role) => roles.iter().any(|r| r.as_ref() == role),
            Requirement::Scope(scope) => scopes.allows(*scope),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::Authenticated => f.write_str("authenticated"),
            Requirement::Role(role) => write!(f, "role:{role}"),
            Requirement::Scope(scope) => write!(f, "scope:{scope}"),
        }
    }
}

/// One rule: host pattern, path prefix, requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The hosts it applies to.
    pub host: HostPattern,
    /// The normalised path prefix, starting with `/`. A prefix ending in `/` also matches the
    /// path without it (`/admin/` matches `/admin`).
    pub path_prefix: String,
    /// What it requires.
    pub requirement: Requirement,
}

impl Rule {
    fn matches(&self, host: &str, path: &str) -> bool {
        if !self.host.matches(host) {
            return false;
        }
        let prefix = &self.path_prefix;
        path.starts_with(prefix.as_str())
            || (prefix.len() > 1 && prefix.ends_with('/') && path == &prefix[..prefix.len() - 1])
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match &self.host {
            HostPattern::Any => "*".to_owned(),
            HostPattern::Exact(host) => host.clone(),
            HostPattern::Subdomains(domain) => format!("*.{domain}"),
        };
        write!(f, "{host}{}={}", self.path_prefix, self.requirement)
    }
}

/// What the rules decide for an authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleDecision<'a> {
    /// Allowed (no rule matched, or the first matching rule is met).
    Allowed,
    /// The first matching rule is not met.
    Refused(&'a Rule),
}

/// `GATEWAY_RULES`: the first rule matching a host and path decides; no match allows any
/// authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rules(pub Vec<Rule>);

impl Rules {
    /// Parses a comma list of `<host><path prefix>=<requirement>`: the host is `*`, a host
    /// name or `*.<domain>`; the path prefix starts with `/`; the requirement is
    /// `role:<name>`, `scope:<scope>` or `authenticated`. Example:
    /// `api.example.com/admin/=role:admin, */agent/=scope:agent:chat`.
    pub fn parse(text: &str) -> Result<Rules, GatewayError> {
        let mut rules = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let refused = || GatewayError::Rule(entry.to_owned());
            let (target, requirement) = entry.rsplit_once('=').ok_or_else(refused)?;
            let requirement = Requirement::parse(requirement.trim())?;
            let target = target.trim();
            let slash = target.find('/').ok_or_else(refused)?;
            let (host, path) = target.split_at(slash);
            let host = if host == "*" {
                HostPattern::Any
            } else if let Some(domain) = host.strip_prefix("*.") {
                if !is_host_name(domain) {
                    return Err(refused());
                }
                HostPattern::Subdomains(domain.to_ascii_lowercase())
            } else {
                if !is_host_name(host) {
                    return Err(refused());
                }
                HostPattern::Exact(host.to_ascii_lowercase())
            };
            if path.contains(['?', '#']) || path.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
                return Err(refused());
            }
            let path_prefix = normalize_path(path).map_err(|_| refused())?;
            rules.push(Rule {
                host,
                path_prefix,
                requirement,
            });
        }
        Ok(Rules(rules))
    }

    /// The first rule matching `host` (lower-case, no port) and `path` (normalised with
    /// [`normalize_path`]).
    pub fn first_match(&self, host: &str, path: &str) -> Option<&Rule> {
        self.0.iter().find(|rule| rule.matches(host, path))
    }

    /// The decision for a caller with `roles` and `scopes` asking for `host` and `path`.
    pub fn decide<S: AsRef<str>>(&self, host: &str, path: &str, roles: &[S], scopes: ScopeSet) -> RuleDecision<'_> {
        match self.first_match(host, path) {
            Some(rule) if !rule.requirement.is_met_by(roles, scopes) => RuleDecision::Refused(rule),
            _ => RuleDecision::Allowed,
        }
    }
}

impl fmt::Display for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rules: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&rules.join(","))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn domains() -> Domains {
        Domains::parse("example.com, http://dev.test").unwrap()
    }

    fn allowed(url: &str) -> bool {
        AbsoluteUrl::parse(url).is_ok_and(|u| domains().allows(&u))
    }

    #[test]
    fn return_urls_on_listed_domains_and_their_subdomains_are_allowed() {
        for url in [
            "https://example.com/",
            "https://example.com",
            "https://app.example.com/a/b?c=d#e",
            "https://deep.app.example.com:8443/x",
            "HTTPS://APP.Example.COM/x",
            "http://dev.test/x",
            "https://api.dev.test/x",
            "https://example.com//evil.com",
        ] {
            assert!(allowed(url), "{url}");
        }
    }

    #[test]
    fn open_redirect_attacks_are_refused() {
        // Arrange: the classic tricks against return-URL checks.
        let attacks = [
            "https://evil.com/",
            "https://example.com.evil.com/",
            "https://evilexample.com/",
            "https://example.com@evil.com/",
            "https://user:pass@example.com/",
            "https://evil.com\\@example.com/",
            "https://example.com\\.evil.com/",
            "https:/\\evil.com/",
            "https:\\\\evil.com/",
            "//evil.com/",
            "///evil.com/",
            "/\\evil.com",
            "/foo",
            "https:evil.com",
            "https:/evil.com",
            "javascript:alert(1)//example.com",
            "data:text/html,https://example.com",
            "ftp://example.com/",
            "https://evil.com#@example.com",
            "https://evil.com?.example.com",
            "https://evil.com/.example.com",
            "https://evil%2ecom/",
            "https://example.com%2f@evil.com/",
            "https://ex\tample.com/",
            "https://example.com\n.evil.com/",
            " https://example.com/",
            "https://еxample.com/",
            "https://[::1]/",
            "https://example.com:0/",
            "https://example.com:99999/",
            "https://example.com:80x/",
            "https://-example.com/",
            "https://example.com./",
            "https://.example.com/",
            "http://example.com/",
            "",
        ];
        for url in attacks {
            // Act + Assert
            assert!(!allowed(url), "{url:?} must be refused");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(AbsoluteUrl::parse(&long), Err(GatewayError::TooLong));
    }

    #[test]
    fn the_signin_location_carries_rd_only_for_allowed_urls() {
        let signin = AbsoluteUrl::parse("https://auth.example.com/").unwrap();
        let good = AbsoluteUrl::parse("https://app.example.com/a?b=c&d=e").unwrap();
        assert_eq!(
            signin_location(&signin, &good, &domains()),
            "https://auth.example.com/?rd=https%3A%2F%2Fapp.example.com%2Fa%3Fb%3Dc%26d%3De"
        );
        let bad = AbsoluteUrl::parse("https://evil.com/").unwrap();
        assert_eq!(signin_location(&signin, &bad, &domains()), "https://auth.example.com/");
        let with_query = AbsoluteUrl::parse("https://auth.example.com/signin?lang=zh#top").unwrap();
        assert_eq!(
            signin_location(&with_query, &good, &domains()),
            "https://auth.example.com/signin?lang=zh&rd=https%3A%2F%2Fapp.example.com%2Fa%3Fb%3Dc%26d%3De#top"
        );
        assert_eq!(
            signin_location(&signin, &good, &Domains::default()),
            "https://auth.example.com/"
        );
    }

    #[test]
    fn urls_are_built_from_forwarded_parts() {
        let url = AbsoluteUrl::from_parts("HTTPS", "App.Example.com:8443", "/x/y?z=1").unwrap();
        assert_eq!(url.to_string(), "https://app.example.com:8443/x/y?z=1");
        assert_eq!(url.path(), "/x/y");
        assert_eq!(url.origin(), "https://app.example.com:8443");
        assert_eq!(
            AbsoluteUrl::from_parts("https", "a.com", "").unwrap().to_string(),
            "https://a.com/"
        );
        assert!(AbsoluteUrl::from_parts("gopher", "a.com", "/").is_err());
        assert!(AbsoluteUrl::from_parts("https", "a.com@evil.com", "/").is_err());
        assert!(AbsoluteUrl::from_parts("https", "a.com", "evil").is_err());
        assert_eq!(
            AbsoluteUrl::from_parts("https", "a.com", "evil"),
            Err(GatewayError::Target)
        );
        assert_eq!(
            AbsoluteUrl::from_parts("https", "a.com/x", "/"),
            Err(GatewayError::Authority)
        );
        assert_eq!(
            AbsoluteUrl::from_parts("https", "a.com?x", "/"),
            Err(GatewayError::Authority)
        );
    }

    #[test]
    fn paths_are_normalised_before_matching() {
        for (raw, normal) in [
            ("/", "/"),
            ("", "/"),
            ("/admin", "/admin"),
            ("/admin/", "/admin/"),
            ("/%61dmin/x", "/admin/x"),
            ("/x/../admin/", "/admin/"),
            ("/x/%2e%2e/admin", "/admin"),
            ("//admin//x", "/admin/x"),
            ("/./admin/.", "/admin/"),
            ("/admin;jsessionid=1/x", "/admin/x"),
            ("/..\\admin", "/admin"),
            ("/../../..", "/"),
            ("/a%2Fb", "/a/b"),
        ] {
            assert_eq!(normalize_path(raw).unwrap(), normal, "{raw}");
        }
        for bad in ["/%", "/%4", "/%zz", "/%00", "/a%0d%0a", "/%+1"] {
            assert_eq!(normalize_path(bad), Err(GatewayError::Escape), "{bad}");
        }
    }

    #[test]
    fn the_first_matching_rule_decides_and_no_match_allows() {
        // Arrange
        let rules = Rules::parse(
            "api.example.com/admin/=role:admin, */agent/=scope:agent:chat, *.example.com/ops=role:ops, */public/=authenticated, */=role:staff",
        )
        .unwrap();
        let user = ScopeSet::USER;
        let none: [&str; 0] = [];
        // Act + Assert
        let refused = |host: &str, path: &str, roles: &[&str], scopes| {
            matches!(rules.decide(host, path, roles, scopes), RuleDecision::Refused(_))
        };
        assert!(refused("api.example.com", "/admin/users", &["staff"], ScopeSet::ALL));
        assert!(refused("api.example.com", "/admin", &["staff"], ScopeSet::ALL));
        assert!(!refused("api.example.com", "/admin/users", &["admin"], ScopeSet::EMPTY));
        assert!(refused("other.com", "/agent/chat", &none, ScopeSet::EMPTY));
        assert!(!refused("other.com", "/agent/chat", &none, user));
        assert!(refused("x.example.com", "/ops", &["staff"], user));
        assert!(!refused("x.example.com", "/ops/x", &["ops"], user));
        assert!(!refused("x.example.com", "/public/page", &none, ScopeSet::EMPTY));
        assert!(refused("x.example.com", "/private", &none, user));
        assert!(!refused("x.example.com", "/private", &["staff"], user));
        assert_eq!(
            rules.first_match("api.example.com", "/admin/").map(|r| r.to_string()),
            Some("api.example.com/admin/=role:admin".to_owned())
        );
        // `*.example.com` is the subdomains, not the domain itself.
        assert_eq!(
            rules.first_match("example.com", "/ops").map(|r| r.to_string()),
            Some("*/=role:staff".to_owned())
        );
        assert_eq!(
            Rules::default().decide("a", "/", &none, ScopeSet::EMPTY),
            RuleDecision::Allowed
        );
    }

    #[test]
    fn malformed_rules_and_domains_are_refused() {
        for bad in [
            "api.example.com=role:admin",
            "/admin/=role:admin",
            "*/admin/",
            "*/admin/=role:",
            "*/admin/=scope:everything",
            "*/admin/=root",
            "ex ample.com/=role:a",
            "*/a?b=authenticated",
            "*/%zz=authenticated",
            "*.-x.com/=authenticated",
        ] {
            assert!(Rules::parse(bad).is_err(), "{bad}");
        }
        let rules = Rules::parse("*/a/=authenticated,*.Example.com/=scope:*").unwrap();
        assert_eq!(rules.to_string(), "*/a/=authenticated,*.example.com/=scope:*");
        for bad in [
            "example.com/path",
            "*.example.com",
            "ex_ample.com",
            "https://a.com:443",
            "a..com",
        ] {
            assert!(Domains::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(domains().to_string(), "example.com,http://dev.test");
        assert!(Domains::parse("").unwrap().is_empty());
    }

    fn target(raw: &str) -> Option<String> {
        return_target(raw, &domains()).map(|t| t.as_location())
    }

    #[test]
    fn same_origin_paths_are_return_targets() {
        for path in ["/", "/account/settings", "/app?tab=keys#top", "/a/b%20c", "/%E4%B8%AD"] {
            assert_eq!(target(path).as_deref(), Some(path), "{path}");
        }
    }

    #[test]
    fn listed_absolute_urls_are_return_targets() {
        assert_eq!(
            target("https://app.example.com/dash?x=1").as_deref(),
            Some("https://app.example.com/dash?x=1")
        );
        assert_eq!(
            target("http://dev.test:8080/").as_deref(),
            Some("http://dev.test:8080/")
        );
    }

    #[test]
    fn open_redirect_attempts_are_refused() {
        // Arrange: every known way to point a "local" or listed URL at another host.
        let attacks = [
            "",
            "//evil.com",
            "///evil.com",
            "/\\evil.com",
            "\\/evil.com",
            "/\\/evil.com",
            "\\\\evil.com",
            "https://evil.com",
            "https://evil.com/https://example.com",
            "https://evilexample.com/",
            "https://example.com.evil.com/",
            "https://good.example.com@evil.com/",
            "https://example.com:443@evil.com",
            "https://example.com\\@evil.com",
            "https://example.com%2F@evil.com",
            "https://ex%61mple.com/",
            "http://example.com/",
            "javascript:alert(1)",
            "JavaScript://example.com/%0Aalert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox",
            "evil.com",
            "example.com/path",
            "/%2F/evil.com",
            "/%2f%2fevil.com",
            "/%5Cevil.com",
            "/%5cevil.com",
            "/%09/evil.com",
            "/%zz",
            "/\t/evil.com",
            "/\n/evil.com",
            "/\r\n//evil.com",
            " /account",
            "/account ",
            "\u{0000}/account",
            "/\u{00a0}/evil.com",
            "/ｅvil",
            "https://exаmple.com/",
            "https:/example.com/",
            "https:example.com",
            "ftp://example.com/",
        ];
        for attack in attacks {
            // Act
            let judged = target(attack);
            // Assert
            assert_eq!(judged, None, "{attack:?} must be refused");
        }
    }

    #[test]
    fn an_overlong_return_url_is_refused() {
        let long = format!("/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(target(&long), None);
        let empty = Domains::default();
        assert_eq!(return_target("https://example.com/", &empty), None);
        assert_eq!(return_target("/ok", &empty), Some(ReturnTarget::Path("/ok".to_owned())));
    }
}
