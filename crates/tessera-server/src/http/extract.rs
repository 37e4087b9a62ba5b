//! Request extractors whose failures use the unified error format: JSON bodies (and form bodies
//! where the seed accepts them), the client address, and the credentials-in-URL guard.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::{AppError, ErrorCode, FieldError};
use crate::config::IpNet;

/// A JSON request body (`Content-Type: application/json`).
pub struct ApiJson<T>(pub T);

/// A JSON or `application/x-www-form-urlencoded` body (POST /login accepts both, as the seed's
/// OAuth2 password form does).
pub struct JsonOrForm<T>(pub T);

enum BodyKind {
    Json,
    Form,
}

fn body_kind(headers: &HeaderMap) -> Option<BodyKind> {
    let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        Some(BodyKind::Json)
    } else if essence == "application/x-www-form-urlencoded" {
        Some(BodyKind::Form)
    } else {
        None
    }
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, AppError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            AppError::Code(ErrorCode::PayloadTooLarge)
        } else {
            AppError::BadRequest("bad_request")
        }
    })
}

/// A required body field: its value, or a `missing` field problem recorded in `errors` (and a
/// default that is never used, since the caller refuses the request when `errors` is not empty).
pub fn required<T: Default>(value: Option<T>, field: &'static str, errors: &mut Vec<FieldError>) -> T {
    value.unwrap_or_else(|| {
        errors.push(FieldError::new(field, "missing", "field required"));
        T::default()
    })
}

/// Parses JSON bytes into `T`: syntax errors are 400 `bad_request`, type and missing-field
/// errors 422 `validation_error` naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let text = inner.to_string();
                let (field, code) = match text.strip_prefix("missing field `") {
                    Some(rest) => (rest.split('`').next().unwrap_or_default().to_owned(), "missing"),
                    None => (path.clone(), "invalid_type"),
                };
                let field = if field.is_empty() || field == "." {
                    "body".to_owned()
                } else {
                    field
                };
                let message = text.split(" at line ").next().unwrap_or_default().to_owned();
                AppError::Validation(vec![FieldError::new(field, code, message)])
            }
            _ => AppError::BadRequest("malformed_json"),
        }
    })?;
    deserializer.end().map_err(|_| AppError::BadRequest("malformed_json"))?;
    Ok(value)
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !matches!(body_kind(req.headers()), Some(BodyKind::Json)) {
            return Err(AppError::Code(ErrorCode::UnsupportedMediaType));
        }
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonOrForm<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let kind = body_kind(req.headers()).ok_or(AppError::Code(ErrorCode::UnsupportedMediaType))?;
        let bytes = read_body(req, state).await?;
        match kind {
            BodyKind::Json => parse_json(&bytes).map(JsonOrForm),
            BodyKind::Form => serde_urlencoded::from_bytes(&bytes)
                .map(JsonOrForm)
                .map_err(|_| AppError::BadRequest("malformed_form")),
        }
    }
}

/// The client's address (B7): the socket peer, unless the peer is a trusted proxy
/// (TRUSTED_PROXIES), in which case the right-most address in `X-Forwarded-For` (or RFC 7239
/// `Forwarded: for=`) that is not itself a trusted proxy. Headers from untrusted peers are
/// ignored, so a client cannot pick its own rate-limit bucket by sending a spoofed header.
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

impl ClientIp {
    /// Resolves the client address from the peer and the forwarding headers.
    pub fn resolve(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> String {
        let Some(peer) = peer else { return "unknown".to_owned() };
        let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
        if !is_trusted(peer) {
            return canonical(peer);
        }
        let hops = forwarded_for(headers);
        let mut nearest = peer;
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) if is_trusted(*ip) => nearest = *ip,
                Some(ip) => return canonical(*ip),
                // An unparseable hop: nothing to its left can be believed.
                None => break,
            }
        }
        canonical(nearest)
    }
}

/// IPv4-mapped IPv6 addresses are printed as IPv4, so one client has one bucket.
fn canonical(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or_else(|| v6.to_string(), |v4| v4.to_string()),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// The hops of `X-Forwarded-For` (all header lines, in order), or else of `Forwarded`; `None`
/// for an entry that is not an address.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let xff: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !xff.is_empty() {
        return xff
            .iter()
            .flat_map(|line| line.split(','))
            .map(|hop| parse_hop(hop.trim()))
            .take(64)
            .collect();
    }
    headers
        .get_all(header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                pair.trim()
                    .strip_prefix("for=")
                    .or_else(|| pair.trim().strip_prefix("FOR="))
            })
        })
        .map(|value| parse_hop(value.trim().trim_matches('"')))
        .take(64)
        .collect()
}

/// An address, possibly with a port (`1.2.3.4:5678`, `[::1]:80`).
fn parse_hop(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    text.strip_prefix('[')
        .and_then(|t| t.split(']').next())
        .and_then(|t| t.parse().ok())
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(ip) = parts.extensions.get::<ClientIp>() {
            return Ok(ip.clone());
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let ip = ClientIp(ClientIp::resolve(peer, &parts.headers, &state.config.trusted_proxies));
        parts.extensions.insert(ip.clone());
        Ok(ip)
    }
}

/// The client's `User-Agent`, cut to 256 characters.
#[derive(Debug, Clone)]
pub struct UserAgent(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for UserAgent {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect());
        Ok(UserAgent(agent))
    }
}

/// Query parameters that carry credentials. URLs end up in logs, browser history and Referer
/// headers, so a request that puts any of these in the query string is refused outright (B6).
const CREDENTIAL_PARAMS: [&str; 9] = [
    "password",
    "api_key",
    "apikey",
    "access_token",
    "refresh_token",
    "token",
    "csrf_token",
    "secret",
    "client_secret",
];

/// Whether a query string names a credential parameter, or carries something shaped like an
/// API key (`tsk_` and a run of base62, G3) under any name or none.
pub fn has_credentials_in_query(query: &str) -> bool {
    form_urlencoded::parse(query.as_bytes()).any(|(key, value)| {
        let key = key.to_ascii_lowercase();
        CREDENTIAL_PARAMS.contains(&key.as_str()) || looks_like_api_key(&key) || looks_like_api_key(&value)
    })
}

/// Whether `text` contains `tsk_` followed by 16 or more base62 characters: a whole key, or
/// enough of one (a typo'd key leaks the rest of it all the same).
fn looks_like_api_key(text: &str) -> bool {
    text.match_indices(tessera_core::apikey::PREFIX).any(|(at, prefix)| {
        text[at + prefix.len()..]
            .bytes()
            .take_while(u8::is_ascii_alphanumeric)
            .count()
            >= 16
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn forwarding_headers_from_untrusted_peers_are_ignored() {
        let spoofed = headers(&[("x-forwarded-for", "1.1.1.1")]);
        let ip = ClientIp::resolve(Some("203.0.113.9".parse().unwrap()), &spoofed, &nets(&["10.0.0.0/8"]));
        assert_eq!(ip, "203.0.113.9");
        assert_eq!(
            ClientIp::resolve(Some("10.0.0.1".parse().unwrap()), &spoofed, &[]),
            "10.0.0.1"
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let trusted = nets(&["10.0.0.0/8", "192.168.0.0/16"]);
        // The client spoofs a first hop; the proxies append the real one.
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 192.168.1.1")]);
        assert_eq!(
            ClientIp::resolve(Some("10.0.0.2".parse().unwrap()), &chain, &trusted),
            "198.51.100.7"
        );
        // Several header lines are one list.
        let split = headers(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(
            ClientIp::resolve(Some("10.0.0.2".parse().unwrap()), &split, &trusted),
            "198.51.100.7"
        );
        // All hops trusted: the left-most.
        let internal = headers(&[("x-forwarded-for", "10.1.1.1, 10.2.2.2")]);
        assert_eq!(
            ClientIp::resolve(Some("10.0.0.2".parse().unwrap()), &internal, &trusted),
            "10.1.1.1"
        );
        // Garbage stops the walk at the nearest trusted hop.
        let garbage = headers(&[("x-forwarded-for", "198.51.100.7, nonsense, 10.3.3.3")]);
        assert_eq!(
            ClientIp::resolve(Some("10.0.0.2".parse().unwrap()), &garbage, &trusted),
            "10.3.3.3"
        );
    }

    #[test]
    fn rfc_7239_forwarded_is_understood() {
        let trusted = nets(&["10.0.0.0/8"]);
        let forwarded = headers(&[("forwarded", "for=6.6.6.6, for=\"[2001:db8::1]:4711\";proto=https")]);
        assert_eq!(
            ClientIp::resolve(Some("10.0.0.2".parse().unwrap()), &forwarded, &trusted),
            "2001:db8::1"
        );
        let mapped = ClientIp::resolve(
            Some("::ffff:198.51.100.1".parse().unwrap()),
            &HeaderMap::new(),
            &trusted,
        );
        assert_eq!(mapped, "198.51.100.1");
    }

    #[test]
    fn credential_parameters_are_found_in_any_spelling() {
        assert!(has_credentials_in_query("password=x"));
        assert!(has_credentials_in_query("a=1&Password=x"));
        assert!(has_credentials_in_query("pass%77ord=x"));
        assert!(has_credentials_in_query("access_token"));
        assert!(!has_credentials_in_query("page=2&sort=asc"));
        assert!(!has_credentials_in_query("%"));
        assert!(!has_credentials_in_query("%2"));
        // API keys, by name or by shape (G3).
        assert!(has_credentials_in_query("api_key=x"));
        assert!(has_credentials_in_query("ApiKey=x"));
        let key = "tsk_0123456789abcdefghijABCDEFGHIJ0123456789abcXYZ123";
        assert!(has_credentials_in_query(&format!("k={key}")));
        assert!(has_credentials_in_query(&format!("q=a&auth=Bearer%20{key}")));
        assert!(has_credentials_in_query(key));
        assert!(has_credentials_in_query(&format!("x=tsk%5F{}", &key[4..])));
        assert!(!has_credentials_in_query("q=tsk_short"));
        assert!(!has_credentials_in_query("q=the+tsk_+prefix"));
    }

    #[test]
    fn json_errors_are_classified() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Body {
            name: String,
        }
        assert!(matches!(
            parse_json::<Body>(b"{"),
            Err(AppError::BadRequest("malformed_json"))
        ));
        assert!(matches!(
            parse_json::<Body>(b"{\"name\":\"a\"} trailing"),
            Err(AppError::BadRequest("malformed_json"))
        ));
        match parse_json::<Body>(b"{}") {
            Err(AppError::Validation(errors)) => {
                assert_eq!((errors[0].field.as_str(), errors[0].code), ("name", "missing"))
            }
            other => panic!("{other:?}"),
        }
        match parse_json::<Body>(b"{\"name\": 5}") {
            Err(AppError::Validation(errors)) => {
                assert_eq!((errors[0].field.as_str(), errors[0].code), ("name", "invalid_type"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_json::<Body>(b"[]"), Err(AppError::Validation(_))));
    }
}
