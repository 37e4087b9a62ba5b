//! Ending sessions and listing them (B3): logout, logout everywhere, a user's live sessions,
//! and ending one of them. A revoked session's access tokens are refused on every instance at
//! once (denylist + Redis pub/sub) and its refresh tokens by the database.

use tessera_core::jwt::Claims;
use tessera_core::store::{Denylist, Session};

use super::App;
use super::error::Error;

impl App {
    /// Ends the session of `claims`, and refuses the presented access token from now on. The
    /// refresh cookie (Path=/refresh) never reaches /logout, so the session is revoked by id.
    /// An API key (no session: empty `sid`) has nothing to end here; revoking the key is
    /// `DELETE /api-keys/{id}`.
    pub async fn logout(&self, claims: &Claims, ip: &str) -> Result<(), Error> {
        if claims.sid.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        self.sessions.revoke(claims.user_id, &claims.sid, now).await?;
        self.denylist
            .revoke_token(&claims.jti, claims.exp + self.config.leeway_secs, now);
        self.deny_sessions([claims.sid.as_str()], now);
        tracing::info!(event = "logout", user_id = claims.user_id, ip_address = %ip, "logged out");
        Ok(())
    }

    /// Ends every session of the user. Returns how many were live. Called with an API key, it
    /// ends the sessions and leaves the key (and the other keys) working.
    pub async fn logout_all(&self, claims: &Claims, ip: &str) -> Result<usize, Error> {
        let now = self.clock.now();
        let revoked = self.sessions.revoke_all(claims.user_id, now).await?;
        let own_session = (!claims.sid.is_empty()).then_some(claims.sid.as_str());
        if own_session.is_some() {
            self.denylist
                .revoke_token(&claims.jti, claims.exp + self.config.leeway_secs, now);
        }
        self.deny_sessions(revoked.iter().map(String::as_str).chain(own_session), now);
        tracing::info!(event = "logout_all", user_id = claims.user_id, ip_address = %ip, sessions_revoked = revoked.len(), "logged out everywhere");
        Ok(revoked.len())
    }

    /// The user's live sessions.
    pub async fn list_sessions(&self, user_id: i64) -> Result<Vec<Session>, Error> {
        Ok(self.sessions.list_active(user_id, self.clock.now()).await?)
    }

    /// Ends one of the user's sessions. Someone else's id, or an unknown one, is
    /// [`Error::NotFound`], not "forbidden", so ids cannot be probed.
    pub async fn end_session(&self, claims: &Claims, session_id: &str, ip: &str) -> Result<(), Error> {
        let now = self.clock.now();
        if session_id.len() > 64 || !self.sessions.revoke(claims.user_id, session_id, now).await? {
            return Err(Error::NotFound);
        }
        self.deny_sessions([session_id], now);
        tracing::info!(event = "session_revoked", user_id = claims.user_id, session_id = %session_id, ip_address = %ip, "session ended by its owner");
        Ok(())
    }
}
