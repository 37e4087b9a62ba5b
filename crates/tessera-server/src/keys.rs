//! The key rings (S3, S4, B1, B4): configured secrets or the managed key ring in the database,
//! rotation by timetable, reloading, and the operator commands behind `tessera keys`.
//!
//! With SECRET_KEY and REFRESH_SECRET_KEY set, tokens are signed with them (kids derived from
//! the secrets, so every instance agrees); PREVIOUS_SECRET_KEYS / PREVIOUS_REFRESH_SECRET_KEYS
//! keep verifying tokens signed before a secret change, as the seed's KeyRotationManager does.
//! With no secrets, Tessera generates its keys on first start and stores them in the database
//! (sealed under MASTER_KEY when one is set). Every instance derives each key's state from its
//! timetable (`activates_at`, `retired_at`) and the clock, and re-reads the table every
//! KEY_RELOAD_SECONDS, so a rotation made by `tessera keys rotate` on a running deployment
//! reaches every instance without restart: the new key is published (JWK set, verification)
//! at once and signs only after KEY_PUBLISH_DELAY, so no verifier meets an unknown kid.

use std::sync::Arc;

use anyhow::{Context, bail};
use arc_swap::ArcSwap;
use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::Sha256;
use tessera_core::Algorithm;
use tessera_core::csrf::CsrfKey;
use tessera_core::keys::{Key, KeyRing, KeyState, Kid, PruneOutcome, ScheduledKey};
use tessera_core::sealing::{MasterKey, is_sealed};
use tessera_core::store::{InsertCondition, KeyPurpose, KeyStore, StoredKey};

use crate::config::Config;

/// The longest an identity assertion lives (the gateway's `X-Tessera-Assertion`), in seconds.
pub const ASSERTION_TTL_SECS: i64 = 60;

/// The key rings and the CSRF key. The rings sit behind `ArcSwap` so that a reload replaces a
/// whole ring at once while requests keep verifying against the one they loaded.
pub struct Keys {
    /// Signs and verifies access tokens.
    pub access: ArcSwap<KeyRing>,
    /// Signs and verifies refresh tokens.
    pub refresh: ArcSwap<KeyRing>,
    /// Signs identity assertions (the gateway's `X-Tessera-Assertion`): always managed and
    /// asymmetric, published in the JWK set beside the access keys.
    pub identity: ArcSwap<KeyRing>,
    /// Derives CSRF tokens.
    pub csrf: CsrfKey,
    /// Where the keys came from, for the startup line.
    pub source: &'static str,
    /// Authenticates entries of the shared token cache (never leaves the process).
    pub cache_mac_key: zeroize::Zeroizing<Vec<u8>>,
    /// Hashes API keys for storage and lookup (G3); derived from the same root secret as the
    /// CSRF key, so every instance computes the same hash.
    pub api_key_hasher: tessera_core::apikey::KeyHasher,
    /// The managed key ring's store, when keys are managed (reloads and rotation).
    managed: Option<Managed>,
}

struct Managed {
    store: Arc<dyn KeyStore>,
    master: Option<MasterKey>,
    access_alg: Algorithm,
    refresh_alg: Algorithm,
    identity_alg: Algorithm,
    /// Which purposes are managed (a configured secret is never replaced by a stored key).
    purposes: Vec<KeyPurpose>,
}

/// Refresh tokens are verified by Tessera alone, so they are always HMAC-signed: with the
/// configured algorithm if it is HMAC, else HS256.
pub fn refresh_algorithm(config: &Config) -> Algorithm {
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

/// The master key, if MASTER_KEY is set.
pub fn master_key(config: &Config) -> anyhow::Result<Option<MasterKey>> {
    config
        .master_key
        .as_ref()
        .map(|secret| MasterKey::new(secret.expose()).context("MASTER_KEY"))
        .transpose()
}

/// The associated data a sealed key is bound to.
fn seal_context(kid: &str, purpose: KeyPurpose, alg: Algorithm) -> Vec<u8> {
    format!("{kid}/{}/{}", purpose.as_str(), alg.as_str()).into_bytes()
}

/// The private bytes of a stored key, opened with the master key when sealed.
fn open_private(stored: &StoredKey, master: Option<&MasterKey>) -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
    if !is_sealed(&stored.private_key) {
        return Ok(zeroize::Zeroizing::new(stored.private_key.clone()));
    }
    let Some(master) = master else {
        bail!("MASTER_KEY: the stored keys are encrypted; set the MASTER_KEY they were sealed with");
    };
    master
        .open(
            &seal_context(&stored.kid, stored.purpose, stored.alg),
            &stored.private_key,
        )
        .with_context(|| {
            format!(
                "MASTER_KEY: stored key {} does not open with this master key",
                stored.kid
            )
        })
}

/// A fresh stored key for `purpose`, sealed when there is a master key.
fn new_stored_key(
    purpose: KeyPurpose,
    alg: Algorithm,
    now: i64,
    activates_at: i64,
    master: Option<&MasterKey>,
) -> anyhow::Result<StoredKey> {
    let (kid, private) = if purpose == KeyPurpose::Csrf {
        let mut secret = vec![0u8; 32];
        OsRng.fill_bytes(&mut secret);
        (Kid::random(&mut OsRng), zeroize::Zeroizing::new(secret))
    } else {
        let key = Key::generate(alg, KeyState::Published, now, &mut OsRng)?;
        let private = key.export_private().context("generated key has no private part")?;
        (key.kid().clone(), private)
    };
    let private_key = match master {
        Some(master) => {
            let mut nonce = [0u8; 24];
            OsRng.fill_bytes(&mut nonce);
            master.seal(&seal_context(kid.as_str(), purpose, alg), &private, nonce)
        }
        None => private.to_vec(),
    };
    Ok(StoredKey {
        kid: kid.to_string(),
        purpose,
        alg,
        state: if activates_at <= now {
            KeyState::Signing
        } else {
            KeyState::Published
        },
        created_at: now,
        deactivated_at: None,
        activates_at,
        retired_at: None,
        private_key,
    })
}

/// The ring of a purpose at `now`, from its stored keys.
fn ring_from_stored(stored: &[StoredKey], master: Option<&MasterKey>, now: i64) -> anyhow::Result<KeyRing> {
    let mut entries = Vec::with_capacity(stored.len());
    for key in stored {
        let private = open_private(key, master)?;
        let kid = Kid::new(key.kid.clone())?;
        let imported = Key::import_private(key.alg, kid, KeyState::Published, key.created_at, None, &private)
            .with_context(|| format!("stored {} key {} is unreadable", key.purpose.as_str(), key.kid))?;
        entries.push(ScheduledKey {
            key: imported,
            activates_at: key.activates_at,
            retired_at: key.retired_at,
        });
    }
    Ok(KeyRing::from_schedule(entries, now)?)
}

/// The stored keys of a purpose, creating a first one (active at once) when there is none.
/// Instances starting together agree: only one first key is ever inserted.
async fn ensure_keys(
    store: &dyn KeyStore,
    purpose: KeyPurpose,
    alg: Algorithm,
    now: i64,
    master: Option<&MasterKey>,
    generated: &mut Vec<&'static str>,
) -> anyhow::Result<Vec<StoredKey>> {
    let existing = store.list(purpose).await?;
    if !existing.is_empty() {
        return Ok(existing);
    }
    if store
        .insert(new_stored_key(purpose, alg, now, now, master)?, InsertCondition::IfNone)
        .await?
    {
        generated.push(purpose.as_str());
    }
    Ok(store.list(purpose).await?)
}

fn configured_ring(
    alg: Algorithm,
    current: &[u8],
    previous: &[crate::config::Secret],
    now: i64,
) -> anyhow::Result<KeyRing> {
    let mut keys = vec![Key::from_secret(alg, current, None, KeyState::Signing, now)?];
    for secret in previous {
        let mut key = Key::from_secret(alg, secret.expose(), None, KeyState::VerifyOnly, now - 1)?;
        key.set_state(KeyState::VerifyOnly, now);
        keys.push(key);
    }
    Ok(KeyRing::new(keys)?)
}

fn check_algorithm(ring: &KeyRing, purpose: KeyPurpose, alg: Algorithm) -> anyhow::Result<()> {
    match ring.signing_key() {
        Some(key) if key.algorithm() == alg => Ok(()),
        Some(key) => bail!(
            "ALGORITHM: the stored {} keys sign with {}, not {alg}; rotate to the new algorithm with \
             `ALGORITHM={alg} tessera keys rotate`",
            purpose.as_str(),
            key.algorithm()
        ),
        None => Ok(()),
    }
}

/// Loads or creates the keys at start.
pub async fn load(config: &Config, store: Arc<dyn KeyStore>, now: i64) -> anyhow::Result<Keys> {
    let master = master_key(config)?;
    let mut generated = Vec::new();
    let mut purposes = Vec::new();
    let access = match &config.secret_key {
        Some(secret) => configured_ring(config.algorithm, secret.expose(), &config.previous_secret_keys, now)?,
        None => {
            purposes.push(KeyPurpose::Access);
            let stored = ensure_keys(
                store.as_ref(),
                KeyPurpose::Access,
                config.algorithm,
                now,
                master.as_ref(),
                &mut generated,
            )
            .await?;
            let ring = ring_from_stored(&stored, master.as_ref(), now)?;
            check_algorithm(&ring, KeyPurpose::Access, config.algorithm)?;
            ring
        }
    };
    let refresh_alg = refresh_algorithm(config);
    let refresh = match &config.refresh_secret_key {
        Some(secret) => configured_ring(refresh_alg, secret.expose(), &config.previous_refresh_secret_keys, now)?,
        None => {
            purposes.push(KeyPurpose::Refresh);
            let stored = ensure_keys(
                store.as_ref(),
                KeyPurpose::Refresh,
                refresh_alg,
                now,
                master.as_ref(),
                &mut generated,
            )
            .await?;
            ring_from_stored(&stored, master.as_ref(), now)?
        }
    };
    // Identity keys are always managed: a configured HMAC secret cannot sign what others verify.
    purposes.push(KeyPurpose::Identity);
    let identity = {
        let stored = ensure_keys(
            store.as_ref(),
            KeyPurpose::Identity,
            config.identity_algorithm,
            now,
            master.as_ref(),
            &mut generated,
        )
        .await?;
        let ring = ring_from_stored(&stored, master.as_ref(), now)?;
        check_algorithm(&ring, KeyPurpose::Identity, config.identity_algorithm)?;
        ring
    };
    // The CSRF key and the token-cache MAC key come from one root secret, separated by label.
    let root = match &config.secret_key {
        Some(secret) => zeroize::Zeroizing::new(secret.expose().to_vec()),
        None => {
            let stored = ensure_keys(
                store.as_ref(),
                KeyPurpose::Csrf,
                Algorithm::HS256,
                now,
                master.as_ref(),
                &mut generated,
            )
            .await?;
            let first = stored.first().context("no csrf key stored")?;
            open_private(first, master.as_ref())?
        }
    };
    let csrf = match &config.secret_key {
        Some(_) => CsrfKey::new(&derive(&root, b"tessera csrf key v1")?)?,
        None => CsrfKey::new(&root)?,
    };
    let cache_mac_key = zeroize::Zeroizing::new(derive(&root, b"tessera token cache v1")?);
    let api_key_hasher =
        tessera_core::apikey::KeyHasher::new(&zeroize::Zeroizing::new(derive(&root, b"tessera api key hash v1")?));
    if !generated.is_empty() {
        tracing::info!(
            event = "keys_generated",
            purposes = %generated.join(","),
            database = %config.database,
            sealed = master.is_some(),
            "generated new signing keys on first start and stored them in the database"
        );
    }
    let source = if config.secret_key.is_some() {
        "SECRET_KEY/REFRESH_SECRET_KEY"
    } else {
        "managed key ring"
    };
    let managed = Some(Managed {
        store,
        master,
        access_alg: config.algorithm,
        refresh_alg,
        identity_alg: config.identity_algorithm,
        purposes,
    });
    Ok(Keys {
        access: ArcSwap::from_pointee(access),
        refresh: ArcSwap::from_pointee(refresh),
        identity: ArcSwap::from_pointee(identity),
        csrf,
        source,
        cache_mac_key,
        api_key_hasher,
        managed,
    })
}

/// A summary of a ring that changes whenever a key is added, removed or changes state.
fn fingerprint(ring: &KeyRing) -> Vec<(String, KeyState)> {
    ring.keys().iter().map(|k| (k.kid().to_string(), k.state())).collect()
}

impl Keys {
    /// Re-reads the managed keys and recomputes every state for `now`; swaps in rings that
    /// changed. Returns whether anything changed.
    pub async fn reload(&self, now: i64) -> anyhow::Result<bool> {
        let Some(managed) = &self.managed else { return Ok(false) };
        let mut changed = false;
        for purpose in &managed.purposes {
            let target = match purpose {
                KeyPurpose::Access => &self.access,
                KeyPurpose::Refresh => &self.refresh,
                KeyPurpose::Identity => &self.identity,
                KeyPurpose::Csrf => continue,
            };
            let stored = managed.store.list(*purpose).await?;
            let ring = ring_from_stored(&stored, managed.master.as_ref(), now)?;
            if fingerprint(&ring) != fingerprint(&target.load()) {
                target.store(Arc::new(ring));
                changed = true;
            }
        }
        Ok(changed)
    }

    /// Adds a scheduled rotation when the newest key of a managed purpose is older than
    /// `interval`. Of several instances finding it due, one inserts.
    pub async fn rotate_if_due(&self, interval: i64, publish_delay: i64, now: i64) -> anyhow::Result<()> {
        let Some(managed) = &self.managed else { return Ok(()) };
        for purpose in &managed.purposes {
            let alg = match purpose {
                KeyPurpose::Access => managed.access_alg,
                KeyPurpose::Refresh => managed.refresh_alg,
                KeyPurpose::Identity => managed.identity_alg,
                KeyPurpose::Csrf => continue,
            };
            let newest = managed
                .store
                .list(*purpose)
                .await?
                .iter()
                .map(|k| k.created_at)
                .max()
                .unwrap_or(0);
            if newest + interval <= now {
                let key = new_stored_key(*purpose, alg, now, now + publish_delay, managed.master.as_ref())?;
                let kid = key.kid.clone();
                if managed
                    .store
                    .insert(key, InsertCondition::IfNoneCreatedAfter(now - interval))
                    .await?
                {
                    tracing::info!(event = "key_rotated", purpose = purpose.as_str(), kid = %kid, alg = %alg, activates_in = publish_delay, "scheduled key rotation");
                }
            }
        }
        Ok(())
    }
}

impl Keys {
    /// Whether the keys are managed (stored, reloaded, rotated on schedule) rather than
    /// configured secrets.
    pub fn is_managed(&self) -> bool {
        self.managed.is_some()
    }
}

/// One line of `tessera keys list`.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// Key id.
    pub kid: String,
    /// access / refresh / csrf.
    pub purpose: KeyPurpose,
    /// Algorithm.
    pub alg: Algorithm,
    /// State now.
    pub state: KeyState,
    /// Created (Unix seconds).
    pub created_at: i64,
    /// Signs from.
    pub activates_at: i64,
    /// Retired from.
    pub retired_at: Option<i64>,
}

/// Every managed key with its state at `now`.
pub async fn list(store: &dyn KeyStore, config: &Config, now: i64) -> anyhow::Result<Vec<KeyInfo>> {
    let master = master_key(config)?;
    let mut infos = Vec::new();
    for purpose in [KeyPurpose::Access, KeyPurpose::Refresh, KeyPurpose::Identity] {
        let stored = store.list(purpose).await?;
        let ring = ring_from_stored(&stored, master.as_ref(), now)?;
        for key in &stored {
            let state = ring.find(&key.kid).map_or(KeyState::Retired, Key::state);
            infos.push(KeyInfo {
                kid: key.kid.clone(),
                purpose,
                alg: key.alg,
                state,
                created_at: key.created_at,
                activates_at: key.activates_at,
                retired_at: key.retired_at,
            });
        }
    }
    Ok(infos)
}

/// `tessera keys rotate`: adds a key for `purpose` that is published now and signs after
/// KEY_PUBLISH_DELAY. Returns its kid.
pub async fn rotate(store: &dyn KeyStore, config: &Config, purpose: KeyPurpose, now: i64) -> anyhow::Result<String> {
    let alg = match purpose {
        KeyPurpose::Access if config.secret_key.is_some() => {
            bail!(
                "SECRET_KEY: access keys come from SECRET_KEY; rotate by setting a new SECRET_KEY and listing the old one in PREVIOUS_SECRET_KEYS"
            )
        }
        KeyPurpose::Refresh if config.refresh_secret_key.is_some() => {
            bail!(
                "REFRESH_SECRET_KEY: refresh keys come from REFRESH_SECRET_KEY; rotate by setting a new one and listing the old one in PREVIOUS_REFRESH_SECRET_KEYS"
            )
        }
        KeyPurpose::Access => config.algorithm,
        KeyPurpose::Refresh => refresh_algorithm(config),
        KeyPurpose::Identity => config.identity_algorithm,
        KeyPurpose::Csrf => bail!("CSRF keys are not rotated by this command"),
    };
    let master = master_key(config)?;
    let key = new_stored_key(purpose, alg, now, now + config.key_publish_delay_secs, master.as_ref())?;
    let kid = key.kid.clone();
    store.insert(key, InsertCondition::Always).await?;
    tracing::info!(event = "key_rotated", purpose = purpose.as_str(), kid = %kid, alg = %alg, activates_in = config.key_publish_delay_secs, "key rotation");
    Ok(kid)
}

/// `tessera keys prune --keep N [--force]`: deletes all but the newest `keep` keys of each
/// purpose, never the signing key, and without `force` never a key that can still verify an
/// unexpired token (those are reported back).
pub async fn prune(
    store: &dyn KeyStore,
    config: &Config,
    keep: usize,
    force: bool,
    now: i64,
) -> anyhow::Result<PruneOutcome> {
    let master = master_key(config)?;
    let mut total = PruneOutcome::default();
    for (purpose, lifetime) in [
        (KeyPurpose::Access, config.access_ttl_secs),
        (KeyPurpose::Refresh, config.refresh_ttl_secs),
        (KeyPurpose::Identity, ASSERTION_TTL_SECS),
    ] {
        let stored = store.list(purpose).await?;
        let mut ring = ring_from_stored(&stored, master.as_ref(), now)?;
        let outcome = ring.prune(keep, now, lifetime + config.leeway_secs, force);
        for kid in &outcome.removed {
            store.delete(kid.as_str()).await?;
            tracing::info!(event = "key_pruned", purpose = purpose.as_str(), kid = %kid, forced = force, "key pruned");
        }
        total.removed.extend(outcome.removed);
        total.refused.extend(outcome.refused);
    }
    Ok(total)
}
