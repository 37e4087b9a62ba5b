//! Request extractors whose failures use the unified error format: JSON bodies (and form bodies
//! where the seed accepts them), the client address, and the credentials-in-URL guard.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use crate::error::{AppError, ErrorCode, FieldError};

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

/// The client's address as seen on the socket. (Trusted proxy headers come with B7.)
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_owned(), |ConnectInfo(addr)| addr.ip().to_string());
        Ok(ClientIp(ip))
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
const CREDENTIAL_PARAMS: [&str; 7] = [
    "password",
    "access_token",
    "refresh_token",
    "token",
    "csrf_token",
    "secret",
    "client_secret",
];

/// Whether a query string names a credential parameter.
pub fn has_credentials_in_query(query: &str) -> bool {
    query.split('&').any(|pair| {
        let key = pair.split('=').next().unwrap_or_default();
        let key = percent_decode_lossy(key).to_ascii_lowercase();
        CREDENTIAL_PARAMS.contains(&key.as_str())
    })
}

fn percent_decode_lossy(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_parameters_are_found_in_any_spelling() {
        assert!(has_credentials_in_query("password=x"));
        assert!(has_credentials_in_query("a=1&Password=x"));
        assert!(has_credentials_in_query("pass%77ord=x"));
        assert!(has_credentials_in_query("access_token"));
        assert!(!has_credentials_in_query("page=2&sort=asc"));
        assert!(!has_credentials_in_query("%"));
        assert!(!has_credentials_in_query("%2"));
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
