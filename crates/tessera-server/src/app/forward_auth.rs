//! Forward auth (G2): the answer to a reverse proxy asking about one of its requests, once the
//! HTTP layer has read the original request from the proxy's headers and authenticated the
//! caller.
//!
//! The order is fixed: the API rate limit counts the request first (a caller refused by a rule
//! still spends budget, so probing rules is not free), then `GATEWAY_RULES` decide
//! ([`tessera_core::gateway::Rules`]), and only an allowed request gets an identity and a
//! signed assertion. Where a browser without a session goes is decided here too
//! ([`App::signin_location`]): the configured sign-in page, with a return URL only when
//! `GATEWAY_DOMAINS` allows it.

use tessera_core::gateway::{self, AbsoluteUrl, RuleDecision};
use tessera_core::limits::Decision;

use super::App;
use super::api_keys::Authenticated;
use super::error::Error;
use super::identity::Identity;

/// What forward auth decided for an authenticated caller.
#[derive(Debug)]
pub enum ForwardOutcome {
    /// Allowed: the identity to pass on, its assertion, and the rate-limit decision (for the
    /// `X-RateLimit-*` headers).
    Allowed {
        /// Who the caller is.
        identity: Box<Identity>,
        /// `X-Tessera-Assertion`, for the original host (or GATEWAY_ASSERTION_AUDIENCE).
        assertion: String,
        /// The API rate-limit decision that counted the request.
        limit: Decision,
    },
    /// The first matching rule is not met.
    Forbidden {
        /// The rule's requirement (`role:...` or `scope:...`).
        requirement: gateway::Requirement,
        /// The rate-limit decision that counted the request.
        limit: Decision,
    },
}

impl App {
    /// Decides forward auth for `caller` asking for `original`, whose path normalised with
    /// [`gateway::normalize_path`] is `path`; `ip` is the client's address.
    pub async fn forward_auth(
        &self,
        caller: &Authenticated,
        original: &AbsoluteUrl,
        path: &str,
        ip: &str,
    ) -> Result<ForwardOutcome, Error> {
        let claims = &caller.claims;
        let limit = self
            .enforce_api_limit(claims.user_id, caller.api_key.as_deref(), ip)
            .await?;
        if let RuleDecision::Refused(rule) =
            self.config
                .gateway_rules
                .decide(&original.host, path, &claims.roles, caller.scopes)
        {
            return Ok(ForwardOutcome::Forbidden {
                requirement: rule.requirement.clone(),
                limit,
            });
        }
        let identity = self.identity(caller).await?;
        let audience = self
            .config
            .gateway_assertion_audience
            .as_deref()
            .unwrap_or(&original.host);
        let assertion = self.assertion(&identity, audience)?;
        Ok(ForwardOutcome::Allowed {
            identity: Box::new(identity),
            assertion,
            limit,
        })
    }

    /// Where a browser without a session that asked for `original` is sent: GATEWAY_SIGNIN_URL
    /// (by default `/signin`, the hosted sign-in page, on the original request's origin), with `rd=<original>` when
    /// GATEWAY_DOMAINS allows that URL, without it otherwise.
    pub fn signin_location(&self, original: &AbsoluteUrl) -> String {
        let default;
        let signin = match &self.config.gateway_signin_url {
            Some(url) => url,
            None => {
                default = AbsoluteUrl {
                    rest: "/signin".to_owned(),
                    ..original.clone()
                };
                &default
            }
        };
        gateway::signin_location(signin, original, &self.config.gateway_domains)
    }
}
