//! Loading the key rings at start: configured secrets (S3) or the managed key ring stored in
//! the database (B1).
//!
//! With SECRET_KEY and REFRESH_SECRET_KEY set, access and refresh tokens are signed with them
//! (kids derived from the secrets, so every instance agrees) and the CSRF key is derived from
//! SECRET_KEY. With neither set, Tessera generates its keys on first start and stores them in
//! the database, whose file is private (mode 0600); every later start, and every other
//! instance on the same database, loads the same keys, so tokens survive restarts.

use anyhow::{Context, bail};
use arc_swap::ArcSwap;
use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::Sha256;
use tessera_core::Algorithm;
use tessera_core::csrf::CsrfKey;
use tessera_core::keys::{Key, KeyRing, KeyState, Kid};
use tessera_core::store::{KeyPurpose, KeyStore, StoredKey};

use crate::config::Config;
use crate::state::{Keys, unix_now};

/// Refresh tokens are verified by Tessera alone, so they are always HMAC-signed: with the
/// configured algorithm if it is HMAC, else HS256.
fn refresh_algorithm(config: &Config) -> Algorithm {
    if config.algorithm.is_symmetric() {
        config.algorithm
    } else {
        Algorithm::HS256
    }
}

/// Derives a sub-key from a configured secret, so one secret never serves two purposes.
fn derive(secret: &[u8], label: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mac = Hmac::<Sha256>::new_from_slice(secret).context("derive key")?;
    Ok(mac.chain_update(label).finalize().into_bytes().to_vec())
}

/// Loads or creates the keys.
pub async fn load(config: &Config, store: &dyn KeyStore) -> anyhow::Result<Keys> {
    let now = unix_now();
    let mut generated = Vec::new();
    let access = match &config.secret_key {
        Some(secret) => KeyRing::new(vec![Key::from_secret(
            config.algorithm,
            secret.expose(),
            None,
            KeyState::Signing,
            now,
        )?])?,
        None => managed_ring(store, KeyPurpose::Access, config.algorithm, now, &mut generated).await?,
    };
    let refresh = match &config.refresh_secret_key {
        Some(secret) => KeyRing::new(vec![Key::from_secret(
            refresh_algorithm(config),
            secret.expose(),
            None,
            KeyState::Signing,
            now,
        )?])?,
        None => {
            managed_ring(
                store,
                KeyPurpose::Refresh,
                refresh_algorithm(config),
                now,
                &mut generated,
            )
            .await?
        }
    };
    let csrf = match &config.secret_key {
        Some(secret) => CsrfKey::new(&derive(secret.expose(), b"tessera csrf key v1")?)?,
        None => {
            let stored = managed_keys(store, KeyPurpose::Csrf, Algorithm::HS256, now, &mut generated).await?;
            let secret = stored.first().context("no csrf key stored")?;
            CsrfKey::new(&secret.private_key)?
        }
    };
    if !generated.is_empty() {
        tracing::info!(
            event = "keys_generated",
            purposes = %generated.join(","),
            database = %config.database,
            "generated new signing keys on first start and stored them in the database"
        );
    }
    let source = if config.secret_key.is_some() {
        "SECRET_KEY/REFRESH_SECRET_KEY"
    } else {
        "managed key ring"
    };
    Ok(Keys {
        access: ArcSwap::from_pointee(access),
        refresh: ArcSwap::from_pointee(refresh),
        csrf,
        source,
    })
}

/// The stored keys of a purpose, creating a first one when there is none.
async fn managed_keys(
    store: &dyn KeyStore,
    purpose: KeyPurpose,
    alg: Algorithm,
    now: i64,
    generated: &mut Vec<&'static str>,
) -> anyhow::Result<Vec<StoredKey>> {
    let existing = store.list(purpose).await?;
    if !existing.is_empty() {
        return Ok(existing);
    }
    let (kid, private_key) = if purpose == KeyPurpose::Csrf {
        let mut secret = vec![0u8; 32];
        OsRng.fill_bytes(&mut secret);
        (Kid::random(&mut OsRng), secret)
    } else {
        let key = Key::generate(alg, KeyState::Signing, now, &mut OsRng)?;
        let private = key.export_private().context("generated key has no private part")?;
        (key.kid().clone(), private.to_vec())
    };
    let first = StoredKey {
        kid: kid.to_string(),
        purpose,
        alg,
        state: KeyState::Signing,
        created_at: now,
        deactivated_at: None,
        private_key,
    };
    let stored = store.insert_initial(purpose, vec![first]).await?;
    if stored.iter().any(|k| k.kid == kid.as_str()) {
        generated.push(purpose.as_str());
    }
    Ok(stored)
}

async fn managed_ring(
    store: &dyn KeyStore,
    purpose: KeyPurpose,
    alg: Algorithm,
    now: i64,
    generated: &mut Vec<&'static str>,
) -> anyhow::Result<KeyRing> {
    let stored = managed_keys(store, purpose, alg, now, generated).await?;
    let mut keys = Vec::with_capacity(stored.len());
    for key in stored {
        let kid = Kid::new(key.kid.clone())?;
        keys.push(
            Key::import_private(
                key.alg,
                kid,
                key.state,
                key.created_at,
                key.deactivated_at,
                &key.private_key,
            )
            .with_context(|| format!("stored {} key {} is unreadable", purpose.as_str(), key.kid))?,
        );
    }
    let ring = KeyRing::new(keys)?;
    match ring.signing_key() {
        Some(key) if key.algorithm() == alg => Ok(ring),
        Some(key) => bail!(
            "ALGORITHM: the stored {} key ring signs with {}, not {alg}; changing the algorithm of an existing \
             deployment needs a key rotation",
            purpose.as_str(),
            key.algorithm()
        ),
        None => bail!("the stored {} key ring has no signing key", purpose.as_str()),
    }
}
