//! The WebAuthn relying party behind a small interface of ours (C3), so the crate doing the
//! checks (`webauthn_rp`) can be swapped without touching the flows in [`super::passkeys`].
//!
//! Everything here is pure computation on bytes and JSON: the ceremony state it hands out is an
//! opaque byte string the caller stores (the shared database), and the stored credential is the
//! verifier's encodings of the public key and of its changing state.
//!
//! Options, and why (docs/MFA.md, "Passkeys"):
//! - attestation `none`: we do not restrict which authenticator makes a passkey, so its make is
//!   not asked for (and no attestation roots have to be kept up to date);
//! - registration: resident key `required` (every passkey can sign in without a password) and
//!   user verification `required` (a discoverable credential used alone must prove the person);
//! - password-less sign-in: discoverable (empty `allowCredentials`), user verification
//!   `required` (the passkey is the only factor);
//! - second factor: `allowCredentials` = the account's passkeys, user verification `preferred`
//!   (the password is the other factor; a security key without a PIN still works);
//! - algorithms: EdDSA, ES256 and RS256 (ES384 too, which the verifier also supports);
//! - a signature counter that does not grow (when not zero) is refused: a cloned authenticator.

use webauthn_rp::bin::{Decode, Encode};
use webauthn_rp::request::auth::{AllowedCredentials, AuthenticationVerificationOptions};
use webauthn_rp::request::register::{
    CredProtect, PublicKeyCredentialUserEntity, RegistrationVerificationOptions, UserHandle, Username,
};
use webauthn_rp::request::{
    AsciiDomain, Credentials, ExtensionInfo, PublicKeyCredentialDescriptor, RpId, UserVerificationRequirement,
};
use webauthn_rp::response::auth::error::AuthCeremonyErr;
use webauthn_rp::response::register::{CompressedPubKey, DynamicState, StaticState};
use webauthn_rp::response::{AuthTransports, CredentialId};
use webauthn_rp::{
    AuthenticatedCredential, DiscoverableAuthentication, DiscoverableAuthenticationServerState,
    DiscoverableCredentialRequestOptions, NonDiscoverableAuthentication, NonDiscoverableAuthenticationServerState,
    NonDiscoverableCredentialRequestOptions, PublicKeyCredentialCreationOptions, Registration, RegistrationServerState,
};

/// Bytes of the WebAuthn user handle we give an account (random, never the account id).
pub const USER_HANDLE_LEN: usize = 16;

/// Why a browser's answer was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Not a WebAuthn response of the expected shape.
    #[error("malformed WebAuthn response: {0}")]
    Malformed(String),
    /// Well formed, but the checks refused it (signature, challenge, origin, RP ID, flags).
    #[error("WebAuthn response refused: {0}")]
    Refused(String),
    /// The signature counter went backwards: a cloned authenticator is suspected.
    #[error("signature counter did not increase")]
    CounterRegression,
}

/// A ceremony just started: the state to store and the options for the browser.
pub struct Started {
    /// Opaque verifier state (stored server-side until the answer comes).
    pub state: Vec<u8>,
    /// `PublicKeyCredentialCreationOptionsJSON` / `PublicKeyCredentialRequestOptionsJSON`.
    pub options: serde_json::Value,
}

/// A credential a registration produced.
pub struct NewCredential {
    /// The credential id.
    pub credential_id: Vec<u8>,
    /// The encoded public key (static state).
    pub public_key: Vec<u8>,
    /// The encoded dynamic state (counter, flags).
    pub state: Vec<u8>,
    /// The signature counter.
    pub sign_count: i64,
    /// The transports the browser reported.
    pub transports: i64,
    /// The user handle it was made for.
    pub user_handle: Vec<u8>,
}

/// A stored credential, as the verifier needs it.
pub struct StoredCredential<'a> {
    /// The credential id.
    pub credential_id: &'a [u8],
    /// The user handle it was registered for.
    pub user_handle: &'a [u8],
    /// The encoded public key.
    pub public_key: &'a [u8],
    /// The encoded dynamic state.
    pub state: &'a [u8],
}

/// What an accepted assertion changes in the stored credential.
pub struct Asserted {
    /// The new encoded dynamic state.
    pub state: Vec<u8>,
    /// The new signature counter.
    pub sign_count: i64,
}

/// An assertion parsed far enough to find its credential.
pub struct Assertion {
    credential_id: Vec<u8>,
    json: serde_json::Value,
}

impl Assertion {
    /// The credential id the browser used.
    pub fn credential_id(&self) -> &[u8] {
        &self.credential_id
    }
}

/// The relying party: RP ID = the host of PUBLIC_URL, origin = PUBLIC_URL's origin.
pub struct RelyingParty {
    rp_id: RpId,
    origin: String,
}

type PubKey = CompressedPubKey<[u8; 32], [u8; 32], [u8; 48], Vec<u8>>;

fn refused(e: impl std::fmt::Display) -> VerifyError {
    VerifyError::Refused(e.to_string())
}

fn internal(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("webauthn: {e}")
}

fn user_handle(bytes: &[u8]) -> Result<UserHandle<USER_HANDLE_LEN>, VerifyError> {
    let array: [u8; USER_HANDLE_LEN] = bytes
        .try_into()
        .map_err(|_| VerifyError::Refused("stored user handle has the wrong length".into()))?;
    Ok(UserHandle::decode(array).unwrap_or_else(|never| match never {}))
}

fn descriptor(credential_id: &[u8], transports: i64) -> Option<PublicKeyCredentialDescriptor<Vec<u8>>> {
    Some(PublicKeyCredentialDescriptor {
        id: CredentialId::decode(credential_id.to_vec()).ok()?,
        transports: AuthTransports::decode(u8::try_from(transports).ok()?).ok()?,
    })
}

fn dynamic_state(bytes: &[u8]) -> Result<DynamicState, VerifyError> {
    let array: [u8; 7] = bytes
        .try_into()
        .map_err(|_| VerifyError::Refused("stored state has the wrong length".into()))?;
    DynamicState::decode(array).map_err(refused)
}

impl RelyingParty {
    /// The relying party of a public base URL (`http(s)://host[:port][/path]`).
    pub fn new(public_url: &str) -> anyhow::Result<RelyingParty> {
        let (scheme, rest) = public_url
            .split_once("://")
            .ok_or_else(|| anyhow::anyhow!("PUBLIC_URL has no scheme"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        let host = if authority.starts_with('[') {
            authority.split(']').next().unwrap_or_default().trim_start_matches('[')
        } else {
            authority.split(':').next().unwrap_or_default()
        };
        let rp_id = RpId::Domain(AsciiDomain::try_from(host.to_ascii_lowercase()).map_err(internal)?);
        Ok(RelyingParty {
            rp_id,
            origin: format!("{scheme}://{}", authority.to_ascii_lowercase()),
        })
    }

    /// The RP ID.
    pub fn rp_id(&self) -> &str {
        self.rp_id.as_ref()
    }

    /// Starts registering a passkey for `username` under `handle`, excluding the account's
    /// passkeys (`(credential id, transports)`) so an authenticator does not make a second one.
    pub fn start_registration(
        &self,
        handle: &[u8],
        username: &str,
        existing: &[(Vec<u8>, i64)],
    ) -> anyhow::Result<Started> {
        let handle = user_handle(handle).map_err(internal)?;
        let name = Username::try_from(username).map_err(internal)?;
        let exclude = existing
            .iter()
            .filter_map(|(id, transports)| descriptor(id, *transports))
            .collect();
        let mut options = PublicKeyCredentialCreationOptions::passkey(
            &self.rp_id,
            PublicKeyCredentialUserEntity {
                name,
                id: &handle,
                display_name: None,
            },
            exclude,
        );
        // credProtect "user verification required" is asked for but not enforced: an
        // authenticator without the extension (Chromium's virtual one, older security keys)
        // still makes the passkey, which needs user verification to sign in alone anyway.
        options.extensions.cred_protect = CredProtect::UserVerificationRequired(ExtensionInfo::AllowDontEnforceValue);
        let (server, client) = options.start_ceremony().map_err(internal)?;
        Ok(Started {
            state: server.encode().map_err(internal)?,
            options: serde_json::to_value(&client).map_err(internal)?,
        })
    }

    /// Checks a registration response (`PublicKeyCredential.toJSON()`) against the state.
    pub fn finish_registration(&self, state: &[u8], response: serde_json::Value) -> Result<NewCredential, VerifyError> {
        let server = RegistrationServerState::<USER_HANDLE_LEN>::decode(state).map_err(refused)?;
        let registration: Registration =
            serde_json::from_value(response).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        let origins = [self.origin.as_str()];
        let options = RegistrationVerificationOptions::<&str, &str> {
            allowed_origins: &origins,
            ..RegistrationVerificationOptions::default()
        };
        let credential = server.verify(&self.rp_id, &registration, &options).map_err(refused)?;
        let dynamic = credential.dynamic_state();
        Ok(NewCredential {
            credential_id: credential.id().as_ref().to_vec(),
            public_key: credential.static_state().encode().map_err(refused)?,
            state: dynamic.encode().map_err(refused)?.to_vec(),
            sign_count: i64::from(dynamic.sign_count),
            transports: i64::from(credential.transports().encode().map_err(refused)?),
            user_handle: credential.user_id().encode().map_err(refused)?.to_vec(),
        })
    }

    /// Starts a password-less sign-in: any passkey of this RP, user verification required.
    pub fn start_login(&self) -> anyhow::Result<Started> {
        let (server, client) = DiscoverableCredentialRequestOptions::passkey(&self.rp_id)
            .start_ceremony()
            .map_err(internal)?;
        Ok(Started {
            state: server.encode().map_err(internal)?,
            options: serde_json::to_value(&client).map_err(internal)?,
        })
    }

    /// Starts a second-factor check with the account's passkeys, user verification preferred.
    pub fn start_second_factor(&self, existing: &[(Vec<u8>, i64)]) -> anyhow::Result<Started> {
        let mut allowed = AllowedCredentials::with_capacity(existing.len());
        for (id, transports) in existing {
            if let Some(descriptor) = descriptor(id, *transports) {
                allowed.push(descriptor.into());
            }
        }
        let mut options = NonDiscoverableCredentialRequestOptions::second_factor(&self.rp_id, allowed)
            .map_err(|_| anyhow::anyhow!("webauthn: no passkey to ask for"))?;
        options.options().user_verification = UserVerificationRequirement::Preferred;
        let (server, client) = options.start_ceremony().map_err(internal)?;
        Ok(Started {
            state: server.encode().map_err(internal)?,
            options: serde_json::to_value(&client).map_err(internal)?,
        })
    }

    /// Reads the credential id of an assertion (`PublicKeyCredential.toJSON()`), to look the
    /// stored credential up before verifying.
    pub fn parse_assertion(&self, response: serde_json::Value) -> Result<Assertion, VerifyError> {
        let raw_id = response
            .get("rawId")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| VerifyError::Malformed("rawId missing".into()))?;
        let credential_id = tessera_core::b64::decode(raw_id)
            .filter(|id| !id.is_empty() && id.len() <= 1023)
            .ok_or_else(|| VerifyError::Malformed("rawId is not base64url".into()))?;
        Ok(Assertion {
            credential_id,
            json: response,
        })
    }

    /// Verifies an assertion of a password-less sign-in (`discoverable`) or of a second factor
    /// against the stored state and credential; the credential's new state on success.
    pub fn finish_assertion(
        &self,
        discoverable: bool,
        state: &[u8],
        assertion: Assertion,
        stored: &StoredCredential<'_>,
    ) -> Result<Asserted, VerifyError> {
        let handle = user_handle(stored.user_handle)?;
        let id = CredentialId::<&[u8]>::decode(stored.credential_id).map_err(refused)?;
        let static_state = StaticState::<PubKey>::decode(stored.public_key).map_err(refused)?;
        let mut credential =
            AuthenticatedCredential::new(id, &handle, static_state, dynamic_state(stored.state)?).map_err(refused)?;
        let origins = [self.origin.as_str()];
        let options = AuthenticationVerificationOptions::<&str, &str> {
            allowed_origins: &origins,
            update_uv: true,
            ..AuthenticationVerificationOptions::default()
        };
        let result = if discoverable {
            let server = DiscoverableAuthenticationServerState::decode(state).map_err(refused)?;
            let response: DiscoverableAuthentication<USER_HANDLE_LEN> =
                serde_json::from_value(assertion.json).map_err(|e| VerifyError::Malformed(e.to_string()))?;
            server.verify(&self.rp_id, &response, &mut credential, &options)
        } else {
            let server = NonDiscoverableAuthenticationServerState::decode(state).map_err(refused)?;
            let response: NonDiscoverableAuthentication<USER_HANDLE_LEN> =
                serde_json::from_value(assertion.json).map_err(|e| VerifyError::Malformed(e.to_string()))?;
            server.verify(&self.rp_id, &response, &mut credential, &options)
        };
        match result {
            Ok(_) => {
                let dynamic = credential.dynamic_state();
                Ok(Asserted {
                    state: dynamic.encode().map_err(refused)?.to_vec(),
                    sign_count: i64::from(dynamic.sign_count),
                })
            }
            Err(AuthCeremonyErr::SignatureCounter) => Err(VerifyError::CounterRegression),
            Err(e) => Err(refused(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rp_id_is_the_host_and_the_origin_keeps_the_port() {
        let rp = RelyingParty::new("http://localhost:8000/tessera").unwrap();
        assert_eq!(rp.rp_id(), "localhost");
        assert_eq!(rp.origin, "http://localhost:8000");
        let rp = RelyingParty::new("https://Auth.Example.com").unwrap();
        assert_eq!(
            (rp.rp_id(), rp.origin.as_str()),
            ("auth.example.com", "https://auth.example.com")
        );
    }

    #[test]
    fn registration_options_are_passkey_options_for_the_browser() {
        let rp = RelyingParty::new("https://auth.example.com").unwrap();
        let started = rp
            .start_registration(&[7; USER_HANDLE_LEN], "alice", &[(vec![1; 16], 0)])
            .unwrap();
        let o = &started.options;
        assert_eq!(o["rp"]["id"], "auth.example.com");
        assert_eq!(o["user"]["name"], "alice");
        assert_eq!(o["attestation"], "none");
        assert_eq!(o["authenticatorSelection"]["residentKey"], "required");
        assert_eq!(o["authenticatorSelection"]["userVerification"], "required");
        let algs: Vec<i64> = o["pubKeyCredParams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["alg"].as_i64().unwrap())
            .collect();
        for alg in [-7, -8, -257] {
            assert!(algs.contains(&alg), "{alg} in {algs:?}");
        }
        assert_eq!(o["excludeCredentials"].as_array().unwrap().len(), 1);
        assert!(!started.state.is_empty());
    }

    #[test]
    fn login_and_second_factor_options_differ_in_the_allow_list_and_user_verification() {
        let rp = RelyingParty::new("https://auth.example.com").unwrap();
        let login = rp.start_login().unwrap().options;
        assert_eq!(login["userVerification"], "required");
        assert!(
            login
                .get("allowCredentials")
                .is_none_or(|a| a.as_array().unwrap().is_empty())
        );
        let second = rp.start_second_factor(&[(vec![2; 16], 0)]).unwrap().options;
        assert_eq!(second["userVerification"], "preferred");
        assert_eq!(second["allowCredentials"].as_array().unwrap().len(), 1);
        assert!(rp.start_second_factor(&[]).is_err());
    }

    #[test]
    fn a_malformed_answer_is_refused_as_malformed() {
        let rp = RelyingParty::new("https://auth.example.com").unwrap();
        let started = rp.start_registration(&[7; USER_HANDLE_LEN], "alice", &[]).unwrap();
        assert!(matches!(
            rp.finish_registration(&started.state, serde_json::json!({"id": 1})),
            Err(VerifyError::Malformed(_))
        ));
        assert!(matches!(
            rp.parse_assertion(serde_json::json!({"id": "x"})),
            Err(VerifyError::Malformed(_))
        ));
    }
}
