//! The operator command line (B13): `tessera serve`, `config check`, `keys list|rotate|prune`,
//! `users create|disable|enable|list`, `migrate`, and (in [`service_accounts`])
//! `service-accounts create|list|disable` and `api-keys create`.
//!
//! Every command reads the same configuration as `serve` (the environment, then `.env` in the
//! working directory) and works on the database directly, so it runs next to live instances:
//! they pick up key changes within KEY_RELOAD_SECONDS and revocations at once over Redis
//! pub/sub, or within REVOCATION_POLL_MILLIS from the database. Exit status: 0 success, 1 the
//! command failed, 2 invalid configuration or command line.

pub mod service_accounts;

use std::future::Future;
use std::io::{IsTerminal, Read};
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use rand::RngCore;
use rand::rngs::OsRng;
use serde_json::json;
use tessera_core::password::{PasswordHasher, PasswordPolicy};
use tessera_core::store::{MfaStore, SessionStore, StoreError, User, UserStore};
use tessera_store::migrations::{self, MigrationInfo, MigrationStatus};
use tessera_store::redis_bus::RedisBus;
use zeroize::Zeroizing;

use crate::app::accounts::{Accounts, CreateError, OperatorError, RevocationNotice};
use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config, Database};
use crate::hashing::HashPool;

/// Shown under every subcommand's `--help`.
const FOOTER: &str = "\
Configuration: read from the environment, then from .env in the working directory (the same
variables as `tessera serve`; DATABASE_URL, or DATA_DIR for the default SQLite file). See
`tessera config check` and README.md.

Exit status: 0 success; 1 the command failed (database unreachable, not found, refused);
2 invalid configuration or command line.";

/// Tessera: a JWT authentication server. Configuration comes from the environment and from a
/// `.env` file in the working directory (see README.md for every variable).
#[derive(Debug, Parser)]
#[command(name = "tessera", version = crate::release::VERSION, long_version = crate::release::LONG_VERSION)]
#[command(about, long_about = None, after_help = FOOTER)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (zero configuration: an SQLite file under DATA_DIR, keys made on first start).
    #[command(after_help = FOOTER)]
    Serve {
        /// Listen address; overrides BIND_ADDR (default 127.0.0.1:8000).
        #[arg(long)]
        bind: Option<SocketAddr>,
    },
    /// Manage the signing keys of a running deployment (managed key ring).
    #[command(after_help = FOOTER)]
    Keys {
        /// What to do with them.
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Inspect the configuration.
    #[command(after_help = FOOTER)]
    Config {
        /// What to do with it.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Manage accounts: create, disable, enable, list. Works on the database directly, next to
    /// running instances.
    #[command(after_help = FOOTER)]
    Users {
        /// What to do with them.
        #[command(subcommand)]
        action: UsersAction,
    },
    /// Apply the pending database migrations of this version to DATABASE_URL (SQLite or
    /// PostgreSQL) and print what was applied. `serve` applies them at start as well; run this
    /// first to upgrade the schema as a separate deployment step.
    #[command(after_help = FOOTER)]
    Migrate {
        /// Apply nothing: list applied and pending migrations and exit 1 when any is pending
        /// (or the schema has a problem), 0 when the schema is current. Writes nothing, and
        /// does not create a missing SQLite file.
        #[arg(long)]
        check: bool,
    },
    /// Manage service accounts (non-human accounts that own API keys and never log in with a
    /// password): create, list, disable.
    #[command(after_help = FOOTER)]
    ServiceAccounts {
        /// What to do with them.
        #[command(subcommand)]
        action: service_accounts::ServiceAccountsAction,
    },
    /// Create API keys for service accounts (the key is printed once).
    #[command(after_help = FOOTER)]
    ApiKeys {
        /// What to do.
        #[command(subcommand)]
        action: service_accounts::ApiKeysAction,
    },
    /// Generate man pages or shell completions from this command line (packaging step).
    #[command(hide = true)]
    Generate {
        /// What to generate.
        #[command(subcommand)]
        action: crate::release::GenerateAction,
    },
}

/// `tessera users ...`. Each opens the database like `serve` (applying pending migrations).
#[derive(Debug, Subcommand)]
pub enum UsersAction {
    /// Create an account with the rules of POST /register (email format, username alphabet,
    /// password policy, argon2id hashing) and print its id. The password is read from stdin
    /// with --password-stdin, or prompted for twice without echo on a terminal; it is never
    /// an argument, which would show in `ps` and the shell history.
    #[command(after_help = FOOTER)]
    Create {
        /// Email address (unique, case-insensitively).
        #[arg(long)]
        email: String,
        /// Username: 3 to 32 letters, digits, dots, underscores or hyphens (unique,
        /// case-insensitively).
        #[arg(long)]
        username: String,
        /// Read the password from standard input (everything up to end of input, one trailing
        /// newline removed), e.g. `printf %s "$PW" | tessera users create ... --password-stdin`.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account: it can no longer log in or refresh, and every live session is
    /// revoked, so its access tokens are refused by every running instance (at once over
    /// Redis when REDIS_URL is set, otherwise within REVOCATION_POLL_MILLIS).
    #[command(after_help = FOOTER)]
    Disable {
        /// The account: email, username or numeric id.
        user: String,
    },
    /// Enable a disabled account again: it can log in (its old sessions stay revoked).
    #[command(after_help = FOOTER)]
    Enable {
        /// The account: email, username or numeric id.
        user: String,
    },
    /// List accounts, oldest first: id, email, username, created, disabled (UTC, RFC 3339).
    #[command(after_help = FOOTER)]
    List {
        /// At most this many accounts.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        limit: i64,
        /// Skip this many accounts first (paging).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
        offset: i64,
        /// Print a JSON array of {id, email, username, created_at, disabled_at} instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Grant, take away or list an account's roles (`admin` is built in and grants every
    /// scope; other names are free-form). Access tokens carry the roles from the next
    /// refresh or login on.
    #[command(after_help = FOOTER)]
    Roles {
        /// What to do.
        #[command(subcommand)]
        action: RolesAction,
    },
    /// Manage an account's second factor (TOTP and recovery codes).
    #[command(after_help = FOOTER)]
    Mfa {
        /// What to do.
        #[command(subcommand)]
        action: MfaAction,
    },
}

/// `tessera users mfa ...`.
#[derive(Debug, Subcommand)]
pub enum MfaAction {
    /// Remove the account's authenticator app, recovery codes and pending second-factor logins
    /// (for a person who lost both their app and their recovery codes, once they proved who they
    /// are by other means). Logged as the security event `mfa_reset`; the next login needs only
    /// the password.
    Reset {
        /// The account: email, username or numeric id.
        user: String,
    },
}

/// `tessera users roles ...`.
#[derive(Debug, Subcommand)]
pub enum RolesAction {
    /// Grant a role.
    Add {
        /// The account: email, username or numeric id.
        user: String,
        /// The role: 1 to 64 characters of a-z, 0-9, '_', '-', '.', ':'.
        role: String,
    },
    /// Take a role away.
    Remove {
        /// The account: email, username or numeric id.
        user: String,
        /// The role.
        role: String,
    },
    /// Print the account's roles, one a line.
    List {
        /// The account: email, username or numeric id.
        user: String,
    },
}

/// `tessera keys ...`. These work on the database directly; running instances pick the change
/// up within KEY_RELOAD_SECONDS, without restart.
#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// List access, refresh and identity keys with their state now (published, signing, verify_only,
    /// retired) and their timetable.
    #[command(after_help = FOOTER)]
    List,
    /// Add a new key: published (JWK set, verification) at once, signing after KEY_PUBLISH_DELAY.
    #[command(after_help = FOOTER)]
    Rotate {
        /// Which key ring: access, refresh or identity (the gateway's assertions).
        #[arg(long, default_value = "access", value_parser = ["access", "refresh", "identity"])]
        purpose: String,
    },
    /// Delete all but the newest N keys of each ring. Never the signing key; without --force,
    /// never a key that may still verify an unexpired token.
    #[command(after_help = FOOTER)]
    Prune {
        /// How many keys to keep per ring (the seed's keep_count).
        #[arg(long, default_value_t = 2)]
        keep: usize,
        /// Also delete keys that may still verify unexpired tokens (those tokens stop working).
        #[arg(long)]
        force: bool,
    },
}

/// `tessera config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Check every variable and print the effective configuration, secrets redacted. Exits 2
    /// when a value is invalid.
    #[command(after_help = FOOTER)]
    Check,
}

/// Exit code for an invalid configuration.
pub const EXIT_CONFIG: u8 = 2;

/// Loads and checks the configuration, or prints the one-line error and returns exit code 2.
pub fn load_config() -> Result<Config, ExitCode> {
    config::vars_from_environment()
        .and_then(|vars| Config::from_vars(&vars))
        .map_err(|error| {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_CONFIG)
        })
}

/// `tessera config check`.
pub fn config_check() -> ExitCode {
    match load_config() {
        Ok(config) => {
            // One `# group` heading per concern, then its variables, as declared.
            let mut group = None;
            for var in config::VARS {
                if group != Some(var.group) {
                    group = Some(var.group);
                    println!("# {}", var.group.title().to_lowercase());
                }
                println!("{}={}", var.name, (var.show)(&config));
            }
            println!("# configuration is valid");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// Runs `command` on a single-threaded runtime: exit code 0 on success, 1 on failure (the
/// error on stderr), or the code `command` chose.
pub(crate) fn run_async<Fut>(command: Fut) -> ExitCode
where
    Fut: Future<Output = anyhow::Result<ExitCode>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `tessera keys ...`. Exit code 0 on success, 1 on failure, 2 on invalid configuration.
pub fn keys_command(action: KeysAction) -> ExitCode {
    let config = match load_config() {
        Ok(config) => config,
        Err(code) => return code,
    };
    // The security events (key_rotated, key_pruned) go to stderr as JSON lines.
    crate::telemetry::init_with_writer(&config, std::io::stderr);
    run_async(async move {
        run_keys(action, &config).await?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn run_keys(action: KeysAction, config: &Config) -> anyhow::Result<()> {
    use tessera_core::store::KeyPurpose;
    let store = crate::open_key_store(&config.database).await?;
    let now = SystemClock.now();
    match action {
        KeysAction::List => {
            println!(
                "{:<26} {:<8} {:<6} {:<12} {:<21} {:<21} retired",
                "kid", "purpose", "alg", "state", "created", "signs from"
            );
            for key in crate::keys::list(store.as_ref(), config, now).await? {
                println!(
                    "{:<26} {:<8} {:<6} {:<12} {:<21} {:<21} {}",
                    key.kid,
                    key.purpose.as_str(),
                    key.alg.as_str(),
                    key.state.as_str(),
                    crate::http::rfc3339(key.created_at),
                    crate::http::rfc3339(key.activates_at),
                    key.retired_at
                        .map(crate::http::rfc3339)
                        .unwrap_or_else(|| "-".to_owned())
                );
            }
        }
        KeysAction::Rotate { purpose } => {
            let purpose = match purpose.as_str() {
                "refresh" => KeyPurpose::Refresh,
                "identity" => KeyPurpose::Identity,
                _ => KeyPurpose::Access,
            };
            let kid = crate::keys::rotate(store.as_ref(), config, purpose, now).await?;
            println!(
                "added {} key {kid}: published now, signing from {} (KEY_PUBLISH_DELAY={} s)",
                purpose.as_str(),
                crate::http::rfc3339(now + config.key_publish_delay_secs),
                config.key_publish_delay_secs
            );
        }
        KeysAction::Prune { keep, force } => {
            let outcome = crate::keys::prune(store.as_ref(), config, keep, force, now).await?;
            for kid in &outcome.removed {
                println!("removed {kid}");
            }
            for kid in &outcome.refused {
                println!("kept {kid}: it may still verify unexpired tokens (use --force to remove it anyway)");
            }
            if outcome.removed.is_empty() && outcome.refused.is_empty() {
                println!("nothing to prune");
            }
        }
    }
    Ok(())
}

/// Passwords read from stdin longer than this (in bytes) are refused unread; the policy's
/// limit is 128 characters.
const MAX_STDIN_PASSWORD_BYTES: u64 = 4096;

/// Runs `tessera users ...`. Exit code 0 on success, 1 on failure, 2 on invalid configuration
/// or when `create` has no way to read a password.
pub fn users_command(action: UsersAction) -> ExitCode {
    let config = match load_config() {
        Ok(config) => config,
        Err(code) => return code,
    };
    // The security events (user_created, user_disabled, user_enabled) go to stderr as JSON
    // lines, like the server's, for the audit trail.
    crate::telemetry::init_with_writer(&config, std::io::stderr);
    // The password is read before the database is opened, so a prompt is not interleaved
    // with output, and after the configuration is checked, so it is not typed in vain.
    let password = match &action {
        UsersAction::Create { password_stdin, .. } => match read_password(*password_stdin) {
            Ok(password) => Some(password),
            Err(code) => return code,
        },
        _ => None,
    };
    run_async(async move {
        let (users, sessions, mfa) = crate::open_user_admin_stores(&config.database).await?;
        let accounts = account_service(&config, users.clone(), sessions)?;
        match action {
            UsersAction::Create { email, username, .. } => {
                let password = password.unwrap_or_default();
                create_user(&accounts, email.trim(), username.trim(), password).await
            }
            UsersAction::Disable { user } => disable_user(&config, &accounts, &user).await,
            UsersAction::Enable { user } => enable_user(&accounts, &user).await,
            UsersAction::List { limit, offset, json } => list_users(users.as_ref(), limit, offset, json).await,
            UsersAction::Roles { action } => user_roles(&accounts, action).await,
            UsersAction::Mfa {
                action: MfaAction::Reset { user },
            } => reset_mfa(&accounts, mfa.as_ref(), &user).await,
        }
    })
}

/// The new account's password: from stdin (`--password-stdin`), or prompted for twice
/// without echo when stdin is a terminal. Anything else is a usage error (exit 2).
fn read_password(from_stdin: bool) -> Result<Zeroizing<String>, ExitCode> {
    let failed = |message: String| {
        eprintln!("error: {message}");
        ExitCode::FAILURE
    };
    if from_stdin {
        let mut password = Zeroizing::new(String::new());
        std::io::stdin()
            .take(MAX_STDIN_PASSWORD_BYTES + 1)
            .read_to_string(&mut password)
            .map_err(|e| failed(format!("could not read the password from stdin: {e}")))?;
        if password.len() as u64 > MAX_STDIN_PASSWORD_BYTES {
            return Err(failed(format!(
                "the password on stdin is longer than {MAX_STDIN_PASSWORD_BYTES} bytes"
            )));
        }
        // `echo` and here-strings add one newline; strip exactly that.
        let trimmed = password
            .strip_suffix('\n')
            .map(|p| p.strip_suffix('\r').unwrap_or(p))
            .unwrap_or(&password);
        return Ok(Zeroizing::new(trimmed.to_owned()));
    }
    if !std::io::stdin().is_terminal() {
        eprintln!("error: no password: pass --password-stdin and write the password to standard input");
        return Err(ExitCode::from(EXIT_CONFIG));
    }
    let first = Zeroizing::new(
        rpassword::prompt_password("Password: ").map_err(|e| failed(format!("could not read the password: {e}")))?,
    );
    let second = Zeroizing::new(
        rpassword::prompt_password("Password (again): ")
            .map_err(|e| failed(format!("could not read the password: {e}")))?,
    );
    if *first != *second {
        return Err(failed("the passwords do not match".into()));
    }
    Ok(first)
}

/// The account service the server uses, on the CLI's stores: the server's argon2id
/// parameters (PASSWORD_HASH_*) on a one-worker pool, so `users create` takes the same code
/// path as POST /register. The dummy salt only serves timing-safe verification of unknown
/// users, which the CLI never does.
pub(crate) fn account_service(
    config: &Config,
    users: std::sync::Arc<dyn UserStore>,
    sessions: std::sync::Arc<dyn SessionStore>,
) -> anyhow::Result<Accounts> {
    let mut dummy_salt = [0u8; 16];
    OsRng.fill_bytes(&mut dummy_salt);
    let hasher = PasswordHasher::new(config.password_params, &dummy_salt)?;
    let hashing = HashPool::start(hasher, 1, 1).context("could not start the hashing thread")?;
    Ok(Accounts::new(
        users,
        sessions,
        hashing,
        PasswordPolicy::default(),
        SystemClock::shared(),
        config.access_ttl_secs + config.leeway_secs,
    ))
}

async fn create_user(
    accounts: &Accounts,
    email: &str,
    username: &str,
    password: Zeroizing<String>,
) -> anyhow::Result<ExitCode> {
    match accounts.create(email, username, password).await {
        Ok(user) => {
            println!("{}", user.id);
            tracing::info!(event = "user_created", user_id = user.id, username = %user.username, source = "cli", "account created by an operator");
            eprintln!("created user {} ({} <{}>)", user.id, user.username, user.email);
            Ok(ExitCode::SUCCESS)
        }
        Err(CreateError::Invalid(errors)) => {
            for error in errors {
                eprintln!("error: {}: {} ({})", error.field, error.message, error.code);
            }
            Ok(ExitCode::FAILURE)
        }
        Err(CreateError::Store(StoreError::Conflict(field))) => {
            eprintln!("error: an account with this {field} already exists");
            Ok(ExitCode::FAILURE)
        }
        Err(CreateError::Store(error)) => Err(error).context("could not create the account"),
        Err(CreateError::Hashing(error)) => Err(error).context("could not hash the password"),
    }
}

fn describe(user: &User) -> String {
    format!("user {} ({} <{}>)", user.id, user.username, user.email)
}

/// How the CLI tells running instances of revoked sessions: the revocations are in the
/// database, which every instance polls; Redis (when configured) tells them at once.
struct CliNotice<'a> {
    config: &'a Config,
}

#[async_trait::async_trait]
impl RevocationNotice for CliNotice<'_> {
    async fn sessions_revoked(&self, session_ids: &[String], until: i64) -> String {
        let poll = format!("within {} ms (database poll)", self.config.revocation_poll_millis);
        let Some(url) = &self.config.redis_url else { return poll };
        if session_ids.is_empty() {
            return poll;
        }
        let published = match RedisBus::new(url.expose(), &self.config.redis_prefix) {
            Ok(bus) => crate::revocation::publish_revoked_sessions(&bus, session_ids, until).await,
            Err(error) => Err(error),
        };
        match published {
            Ok(()) => "at once (Redis pub/sub)".to_owned(),
            Err(error) => {
                eprintln!("warning: could not publish the revocations on Redis ({error}); instances poll them");
                poll
            }
        }
    }
}

/// An operator error as the CLI's failure: a refusal is a message, a store error a cause.
fn operator_failure(error: OperatorError) -> anyhow::Error {
    match error {
        OperatorError::Refused(message) => anyhow::anyhow!(message),
        OperatorError::Store(error) => anyhow::Error::from(error),
    }
}

pub(crate) async fn disable_user(config: &Config, accounts: &Accounts, who: &str) -> anyhow::Result<ExitCode> {
    let disabled = accounts
        .disable(who, &CliNotice { config }, "cli")
        .await
        .map_err(operator_failure)?;
    match disabled.already_since {
        None => println!("disabled {}", describe(&disabled.user)),
        Some(since) => println!(
            "{} was already disabled (since {})",
            describe(&disabled.user),
            crate::http::rfc3339(since)
        ),
    }
    println!(
        "revoked {} live session(s); running instances refuse their access tokens {}",
        disabled.revoked.len(),
        disabled.delivery
    );
    Ok(ExitCode::SUCCESS)
}

async fn enable_user(accounts: &Accounts, who: &str) -> anyhow::Result<ExitCode> {
    let (user, was_disabled) = accounts.enable(who, "cli").await.map_err(operator_failure)?;
    if was_disabled {
        println!("enabled {}: it can log in again", describe(&user));
    } else {
        println!("{} is not disabled", describe(&user));
    }
    Ok(ExitCode::SUCCESS)
}

async fn reset_mfa(accounts: &Accounts, mfa: &dyn MfaStore, who: &str) -> anyhow::Result<ExitCode> {
    let user = accounts.find(who).await.map_err(operator_failure)?;
    if crate::app::mfa::reset_mfa(mfa, user.id, "cli").await? {
        println!(
            "removed the second factor of {}: it signs in with its password alone",
            describe(&user)
        );
    } else {
        println!("{} has no second factor", describe(&user));
    }
    Ok(ExitCode::SUCCESS)
}

async fn user_roles(accounts: &Accounts, action: RolesAction) -> anyhow::Result<ExitCode> {
    match action {
        RolesAction::Add { user, role } => {
            let (user, added) = accounts.add_role(&user, &role, "cli").await.map_err(operator_failure)?;
            if added {
                println!("granted role {role} to {}", describe(&user));
            } else {
                println!("{} already has role {role}", describe(&user));
            }
        }
        RolesAction::Remove { user, role } => {
            let (user, removed) = accounts
                .remove_role(&user, &role, "cli")
                .await
                .map_err(operator_failure)?;
            if removed {
                println!("took role {role} from {}", describe(&user));
            } else {
                println!("{} does not have role {role}", describe(&user));
            }
        }
        RolesAction::List { user } => {
            let (_, roles) = accounts.roles(&user).await.map_err(operator_failure)?;
            for role in roles {
                println!("{role}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn list_users(users: &dyn UserStore, limit: i64, offset: i64, as_json: bool) -> anyhow::Result<ExitCode> {
    let page = users.list(limit, offset).await?;
    let time = crate::http::rfc3339;
    if as_json {
        let rows: Vec<_> = page
            .iter()
            .map(|u| {
                json!({
                    "id": u.id,
                    "email": u.email,
                    "username": u.username,
                    "created_at": time(u.created_at),
                    "disabled_at": u.disabled_at.map(time),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    let email_width = page.iter().map(|u| u.email.len()).max().unwrap_or(0).max(5);
    let name_width = page.iter().map(|u| u.username.len()).max().unwrap_or(0).max(8);
    println!(
        "{:>8}  {:<email_width$}  {:<name_width$}  {:<20}  disabled",
        "id", "email", "username", "created"
    );
    for user in &page {
        println!(
            "{:>8}  {:<email_width$}  {:<name_width$}  {:<20}  {}",
            user.id,
            user.email,
            user.username,
            time(user.created_at),
            user.disabled_at.map_or_else(|| "-".to_owned(), time)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `tessera migrate [--check]`. Exit code 0 when the schema is (now) current, 1 when
/// migrations are pending under --check, on a schema problem or on failure, 2 on invalid
/// configuration.
pub fn migrate_command(check: bool) -> ExitCode {
    match load_config() {
        Ok(config) => run_async(async move { migrate(&config.database, check).await }),
        Err(code) => code,
    }
}

async fn migration_status(database: &Database) -> anyhow::Result<MigrationStatus> {
    let status = match database {
        Database::Sqlite(path) => migrations::sqlite_status(path).await,
        Database::Postgres(url) => migrations::postgres_status(url).await,
    };
    status.with_context(|| format!("could not read the migrations of {database}"))
}

fn migration_name(migration: &MigrationInfo) -> String {
    format!("{:04} {}", migration.version, migration.description)
}

async fn migrate(database: &Database, check: bool) -> anyhow::Result<ExitCode> {
    println!("database: {database}");
    let before = migration_status(database).await?;
    for problem in &before.problems {
        eprintln!("error: {problem}");
    }
    if check {
        if !before.database_exists {
            println!("the database does not exist yet");
        }
        for migration in &before.applied {
            println!("applied  {}", migration_name(migration));
        }
        for migration in &before.pending {
            println!("pending  {}", migration_name(migration));
        }
        return Ok(if before.is_current() {
            println!("schema is current");
            ExitCode::SUCCESS
        } else {
            if !before.pending.is_empty() {
                println!("{} migration(s) pending: run `tessera migrate`", before.pending.len());
            }
            ExitCode::FAILURE
        });
    }
    if !before.problems.is_empty() {
        bail!("the schema needs repair before migrating; nothing was applied");
    }
    if before.pending.is_empty() {
        println!(
            "schema is current ({} migration(s) applied, nothing to do)",
            before.applied.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    match database {
        Database::Sqlite(path) => migrations::sqlite_apply(path).await,
        Database::Postgres(url) => migrations::postgres_apply(url).await,
    }
    .with_context(|| format!("could not migrate {database}"))?;
    let after = migration_status(database).await?;
    for migration in after.applied.iter().filter(|m| !before.applied.contains(m)) {
        println!("applied  {}", migration_name(migration));
    }
    if !after.is_current() {
        bail!("the schema is still not current after migrating");
    }
    println!("schema is current ({} migration(s) applied)", after.applied.len());
    Ok(ExitCode::SUCCESS)
}
