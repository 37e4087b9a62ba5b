//! Service accounts on the command line (G3): `tessera service-accounts create|list|disable`
//! and `tessera api-keys create --service-account NAME`.
//!
//! A service account is a row of `users` with kind `service` and an unusable password hash:
//! its API keys belong to its user id like any key, a password login to it is refused like a
//! wrong password, and disabling it disables its keys on every instance through the existing
//! disabled-owner path (the key lookup checks the owner; the revocation poll drops cached keys
//! of accounts disabled since). Its keys may hold `introspect`, which no user's key can.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use tessera_core::scope::is_valid_role;
use tessera_core::store::{StoreError, User};
use tessera_core::{ScopeSet, Username};

use crate::app::api_keys::{EXPIRES_IN_RANGE, MAX_NAME_CHARS, build_key, service_account_ceiling};
use crate::cli::{account_service, disable_user, load_config, run_async};
use crate::clock::{Clock, SystemClock};

/// `tessera service-accounts ...`.
#[derive(Debug, Subcommand)]
pub enum ServiceAccountsAction {
    /// Create a service account and print its id. It has no password and never logs in; give
    /// it API keys with `tessera api-keys create --service-account NAME`.
    Create {
        /// Its name (the username rules: 3 to 32 letters, digits, dots, underscores or hyphens;
        /// unique among all accounts, case-insensitively).
        name: String,
        /// Roles to grant it, comma-separated (e.g. `admin`; others are free-form).
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
    },
    /// List the service accounts, oldest first: id, name, created, disabled, roles.
    List {
        /// Print a JSON array of {id, name, created_at, disabled_at, roles} instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Disable a service account: its API keys stop working on every instance.
    Disable {
        /// Its name.
        name: String,
    },
}

/// `tessera api-keys ...`.
#[derive(Debug, Subcommand)]
pub enum ApiKeysAction {
    /// Create an API key for a service account and print it once on stdout (only its hash is
    /// stored).
    Create {
        /// The service account that owns the key.
        #[arg(long)]
        service_account: String,
        /// Scopes, comma-separated (e.g. `introspect,profile:read`), within the account's.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// A label for the key (default: the account's name).
        #[arg(long)]
        name: Option<String>,
        /// Seconds until the key expires (default: never).
        #[arg(long)]
        expires_in: Option<i64>,
    },
}

fn refused(message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("error: {message}");
    Ok(ExitCode::FAILURE)
}

/// The service account called `name`, or a message saying why not.
async fn find_service_account(
    users: &dyn tessera_core::store::UserStore,
    name: &str,
) -> anyhow::Result<Result<User, String>> {
    match users.find_by_login(name).await? {
        Some(user) if user.service_account => Ok(Ok(user)),
        Some(_) => Ok(Err(format!("{name} is a user account, not a service account"))),
        None => Ok(Err(format!("no service account named {name}"))),
    }
}

/// Runs `tessera service-accounts ...`. Exit code 0 on success, 1 on failure, 2 on invalid
/// configuration.
pub fn service_accounts_command(action: ServiceAccountsAction) -> ExitCode {
    let config = match load_config() {
        Ok(config) => config,
        Err(code) => return code,
    };
    crate::telemetry::init_with_writer(&config, std::io::stderr);
    run_async(async move {
        let (users, sessions) = crate::open_account_stores(&config.database).await?;
        match action {
            ServiceAccountsAction::Create { name, roles } => {
                let name = name.trim();
                let name = match Username::parse(name) {
                    Ok(username) => username.as_str().to_owned(),
                    Err(error) => return refused(format!("name: {error}")),
                };
                if let Some(bad) = roles.iter().find(|r| !is_valid_role(r)) {
                    return refused(format!("invalid role name `{bad}`"));
                }
                let now = SystemClock.now();
                let user = match users.create_service_account(&name, now).await {
                    Ok(user) => user,
                    Err(StoreError::Conflict(_)) => return refused(format!("an account named {name} already exists")),
                    Err(error) => return Err(error).context("could not create the service account"),
                };
                for role in &roles {
                    users.add_role(user.id, role, now).await?;
                }
                println!("{}", user.id);
                tracing::info!(event = "user_created", user_id = user.id, username = %user.username, kind = "service", source = "cli", "service account created by an operator");
                eprintln!("created service account {} ({})", user.id, user.username);
                Ok(ExitCode::SUCCESS)
            }
            ServiceAccountsAction::List { json } => {
                let accounts = users.list_service_accounts().await?;
                let mut rows = Vec::with_capacity(accounts.len());
                for user in accounts {
                    let roles = users.roles(user.id).await?;
                    rows.push((user, roles));
                }
                let time = crate::http::rfc3339;
                if json {
                    let out: Vec<_> = rows
                        .iter()
                        .map(|(u, roles)| {
                            json!({
                                "id": u.id,
                                "name": u.username,
                                "created_at": time(u.created_at),
                                "disabled_at": u.disabled_at.map(time),
                                "roles": roles,
                            })
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&out)?);
                    return Ok(ExitCode::SUCCESS);
                }
                let width = rows.iter().map(|(u, _)| u.username.len()).max().unwrap_or(0).max(4);
                println!(
                    "{:>8}  {:<width$}  {:<20}  {:<20}  roles",
                    "id", "name", "created", "disabled"
                );
                for (user, roles) in &rows {
                    println!(
                        "{:>8}  {:<width$}  {:<20}  {:<20}  {}",
                        user.id,
                        user.username,
                        time(user.created_at),
                        user.disabled_at.map_or_else(|| "-".to_owned(), time),
                        if roles.is_empty() {
                            "-".to_owned()
                        } else {
                            roles.join(",")
                        }
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            ServiceAccountsAction::Disable { name } => {
                let user = match find_service_account(users.as_ref(), name.trim()).await? {
                    Ok(user) => user,
                    Err(message) => return refused(message),
                };
                let accounts = account_service(&config, users, sessions)?;
                let code = disable_user(&config, &accounts, &user.id.to_string()).await?;
                println!(
                    "its API keys stop working within {} ms on every instance (database poll)",
                    config.revocation_poll_millis
                );
                Ok(code)
            }
        }
    })
}

/// Runs `tessera api-keys ...`. Exit code 0 on success, 1 on failure, 2 on invalid
/// configuration.
pub fn api_keys_command(action: ApiKeysAction) -> ExitCode {
    let config = match load_config() {
        Ok(config) => config,
        Err(code) => return code,
    };
    crate::telemetry::init_with_writer(&config, std::io::stderr);
    run_async(async move {
        let ApiKeysAction::Create {
            service_account,
            scopes,
            name,
            expires_in,
        } = action;
        let (users, _sessions, key_store, api_keys) = crate::open_operator_stores(&config.database).await?;
        let owner = match find_service_account(users.as_ref(), service_account.trim()).await? {
            Ok(user) => user,
            Err(message) => return refused(message),
        };
        if owner.disabled_at.is_some() {
            return refused(format!("service account {} is disabled", owner.username));
        }
        let scopes = match ScopeSet::from_names(scopes.iter().map(|s| s.trim())) {
            Ok(set) if set.is_empty() => return refused("give at least one scope"),
            Ok(set) => set,
            Err(unknown) => return refused(unknown),
        };
        let roles = users.roles(owner.id).await?;
        let ceiling = service_account_ceiling(&roles);
        if !scopes.is_subset_of(ceiling) {
            return refused(format!("the key's scopes must be within the account's ({ceiling})"));
        }
        let label = name.unwrap_or_else(|| owner.username.clone());
        let label = label.trim();
        if label.is_empty() || label.chars().count() > MAX_NAME_CHARS {
            return refused(format!("the name must be 1 to {MAX_NAME_CHARS} characters"));
        }
        if let Some(secs) = expires_in
            && !EXPIRES_IN_RANGE.contains(&secs)
        {
            return refused(format!(
                "--expires-in must be {} to {} seconds",
                EXPIRES_IN_RANGE.start(),
                EXPIRES_IN_RANGE.end()
            ));
        }
        let now = SystemClock.now();
        let keys = crate::keys::load(&config, key_store, now).await?;
        let created = build_key(
            &keys.api_key_hasher,
            owner.id,
            label,
            scopes,
            expires_in.map(|s| now + s),
            (None, None),
            now,
        );
        if !api_keys.create_key(created.key.clone()).await? {
            return refused(format!("service account {} is disabled or gone", owner.username));
        }
        tracing::info!(event = "api_key_created", user_id = owner.id, key_id = %created.key.id, key_prefix = %created.key.prefix, scopes = %scopes, source = "cli", "API key created by an operator");
        println!("{}", created.secret.as_str());
        eprintln!(
            "created key {} ({}) for service account {} with scopes {scopes}; it is shown only once",
            created.key.id, created.key.prefix, owner.username
        );
        Ok(ExitCode::SUCCESS)
    })
}
