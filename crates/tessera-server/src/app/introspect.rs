//! RFC 7662 token introspection (G3): what another service learns about a credential it was
//! shown. An access JWT is checked like a request's (signature, claims, denylist); an API key
//! like a request's key (format, checksum, cache, database, owner enabled) but without counting
//! as a use. Anything that would not authenticate a request is simply inactive: the answer
//! never says why.

use super::App;
use super::error::Error;

/// The answer of an introspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Introspection {
    /// The credential would be accepted now.
    Active {
        /// The owner's user id (the JWT `sub`).
        sub: String,
        /// Its scopes, space-separated.
        scope: String,
        /// Unix seconds when it stops working; `None` for a key that never expires.
        exp: Option<i64>,
        /// The key id of an API key; `None` for an access token (no OAuth client issued it).
        client_id: Option<String>,
        /// `access_token` or `api_key`.
        token_type: &'static str,
    },
    /// Expired, revoked, unknown, malformed, a refresh token: anything else.
    Inactive,
}

impl App {
    /// Introspects `token` (RFC 7662) for a caller at `ip`. Only a store failure is an error;
    /// a credential that does not verify is [`Introspection::Inactive`].
    pub async fn introspect(&self, token: &str, ip: &str) -> Result<Introspection, Error> {
        let token = token.trim();
        if tessera_core::apikey::is_api_key(token) {
            return match self.verify_api_key(token, ip).await {
                Ok(key) => Ok(Introspection::Active {
                    sub: key.user_id.to_string(),
                    scope: key.scopes.to_string(),
                    exp: key.valid_until,
                    client_id: Some(key.id.clone()),
                    token_type: "api_key",
                }),
                Err(Error::Token(_)) => Ok(Introspection::Inactive),
                Err(error) => Err(error),
            };
        }
        match self.authenticate(token, ip).await {
            Ok(claims) => Ok(Introspection::Active {
                sub: claims.sub.clone(),
                scope: tessera_core::ScopeSet::from_claim(claims.scope.as_deref()).to_string(),
                exp: Some(claims.exp),
                client_id: None,
                token_type: "access_token",
            }),
            Err(Error::Token(_)) => Ok(Introspection::Inactive),
            Err(error) => Err(error),
        }
    }
}
