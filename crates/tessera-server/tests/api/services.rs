//! External services for the scale-out and fault tests: PostgreSQL and Redis, a fresh schema and
//! key prefix per test, a configuration builder, and a TCP proxy that can cut a service off.
//!
//! The services are found through `TESSERA_TEST_DATABASE_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`) and `TESSERA_TEST_REDIS_URL` (e.g.
//! `redis://127.0.0.1:6379`). Without them the tests skip with a note on stderr, unless
//! `TESSERA_REQUIRE_SERVICES=1` (CI), where a missing service is a failure, not a silent pass.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tessera_server::config::{Config, Vars};
use tessera_store::postgres::PgStore;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::helpers::{TestApp, spawn_app_with};

/// The database variable.
pub const DATABASE_VAR: &str = "TESSERA_TEST_DATABASE_URL";
/// The Redis variable.
pub const REDIS_VAR: &str = "TESSERA_TEST_REDIS_URL";

/// Something a test needs is missing (`what` says what): a failure under
/// `TESSERA_REQUIRE_SERVICES=1` (CI), otherwise a note before the caller skips.
pub fn unavailable(what: &str) {
    if std::env::var("TESSERA_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("TESSERA_REQUIRE_SERVICES=1 but {what}");
    }
    eprintln!("skipping: {what}");
}

fn service_url(var: &str, example: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ => {
            unavailable(&format!("{var} is not set (e.g. {example})"));
            None
        }
    }
}

/// The test database's URL, or `None` (after a note) when the test should skip.
pub fn database_url() -> Option<String> {
    service_url(DATABASE_VAR, "postgres://postgres@127.0.0.1:5432/test")
}

/// The test Redis's URL, or `None` (after a note) when the test should skip.
pub fn redis_url() -> Option<String> {
    service_url(REDIS_VAR, "redis://127.0.0.1:6379")
}

/// Both services, or `None` when the test should skip.
pub fn both() -> Option<(String, String)> {
    let database = database_url();
    let redis = redis_url();
    Some((database?, redis?))
}

/// 32 random hex digits (std's `RandomState` is randomly seeded per instance).
pub fn random_hex() -> String {
    let half = || {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        hasher.finish()
    };
    format!("{:016x}{:016x}", half(), half())
}

/// `url` with its host and port replaced by `addr` (user, path and query kept).
pub fn with_authority(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("URL with a scheme");
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let userinfo = authority.rsplit_once('@').map(|(user, _)| format!("{user}@"));
    format!("{scheme}://{}{addr}{tail}", userinfo.unwrap_or_default())
}

/// The address a service URL points at (`default_port` when it names none).
pub async fn service_addr(url: &str, default_port: u16) -> SocketAddr {
    let (_, rest) = url.split_once("://").expect("URL with a scheme");
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let target = if host_port
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host_port.to_owned()
    } else {
        format!("{host_port}:{default_port}")
    };
    tokio::net::lookup_host(&target)
        .await
        .unwrap_or_else(|e| panic!("cannot resolve {target}: {e}"))
        .next()
        .unwrap_or_else(|| panic!("{target} resolves to nothing"))
}

/// A fresh schema with the migrations applied, dropped (best effort, even after a panic) with
/// this value. Every server pointed at [`TestSchema::url`] shares it.
pub struct TestSchema {
    base_url: String,
    /// The schema's name.
    pub name: String,
}

impl TestSchema {
    /// Creates the schema and applies the migrations.
    pub async fn create(base_url: &str) -> TestSchema {
        let name = format!("t_{}", random_hex());
        let store = PgStore::connect_with_schema(base_url, &name)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {DATABASE_VAR}={base_url}: {e}"));
        store.close().await;
        TestSchema {
            base_url: base_url.to_owned(),
            name,
        }
    }

    /// The database URL whose connections use this schema (libpq `options`, which sqlx reads:
    /// `-c search_path=<schema>`), so that the server's own `PgStore::connect` lands in it.
    pub fn url(&self) -> String {
        let separator = if self.base_url.contains('?') { '&' } else { '?' };
        format!("{}{separator}options=-c%20search_path%3D{}", self.base_url, self.name)
    }

    /// [`TestSchema::url`], reached through `addr` (a proxy) instead of the real server.
    pub fn url_via(&self, addr: SocketAddr) -> String {
        with_authority(&self.url(), addr)
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on; a thread with a
        // runtime of its own can. Bounded, so a stuck lock cannot hang the suite.
        let (url, schema) = (self.base_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let drop_schema = async {
                    let mut conn = PgConnection::connect(&url).await?;
                    sqlx::query("SET lock_timeout = '5s'").execute(&mut conn).await?;
                    let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await?;
                    conn.close().await
                };
                match tokio::time::timeout(Duration::from_secs(10), drop_schema).await {
                    Ok(result) => result.map_err(std::io::Error::other),
                    Err(elapsed) => Err(std::io::Error::other(elapsed)),
                }
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("note: could not drop test schema {}: {dropped:?}", self.name);
        }
    }
}

/// A random Redis key prefix whose keys are deleted (best effort) with this value. They would
/// expire on their own within two rate-limit periods anyway.
pub struct RedisPrefix {
    url: String,
    /// `tessera-test:<random>:`.
    pub prefix: String,
}

impl RedisPrefix {
    /// A fresh prefix on the Redis at `url`.
    pub fn new(url: &str) -> RedisPrefix {
        RedisPrefix {
            url: url.to_owned(),
            prefix: format!("tessera-test:{}:", random_hex()),
        }
    }

    /// A connection to the real Redis (not through any proxy), to look at what the servers did.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.url.as_str()).expect("Redis URL");
        client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test Redis")
    }

    /// How many connections subscribe to the servers' pub/sub channel.
    pub async fn subscribers(&self) -> i64 {
        let mut connection = self.connection().await;
        let (_, count): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(format!("{}events", self.prefix))
            .query_async(&mut connection)
            .await
            .expect("PUBSUB NUMSUB");
        count
    }

    /// Waits (at most 5 s) until `count` instances subscribe to the pub/sub channel, so that a
    /// measurement of the pub/sub path is not a measurement of the subscription start-up.
    pub async fn wait_for_subscribers(&self, count: i64) {
        let started = std::time::Instant::now();
        while self.subscribers().await < count {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{count} instances did not subscribe within 5 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every key under this prefix, with its value (when it is a string).
    pub async fn keys(&self) -> Vec<(String, Option<i64>)> {
        let mut connection = self.connection().await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut connection)
            .await
            .expect("KEYS");
        let mut out = Vec::new();
        for key in keys {
            let value: Option<i64> = redis::cmd("GET").arg(&key).query_async(&mut connection).await.ok();
            out.push((key, value));
        }
        out
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let delete = async {
                    let client = redis::Client::open(url.as_str())?;
                    let mut connection = client.get_multiplexed_async_connection().await?;
                    let keys: Vec<String> = redis::cmd("KEYS")
                        .arg(format!("{prefix}*"))
                        .query_async(&mut connection)
                        .await?;
                    if !keys.is_empty() {
                        redis::cmd("DEL").arg(keys).query_async::<i64>(&mut connection).await?;
                    }
                    Ok::<_, redis::RedisError>(())
                };
                tokio::time::timeout(Duration::from_secs(5), delete)
                    .await
                    .map_err(std::io::Error::other)?
                    .map_err(std::io::Error::other)
            })
        })
        .join();
    }
}

/// The variables of `Config::for_tests` (plain HTTP cookies, cheap hashing, generous limits),
/// then `overrides`: the way to get a `Config` with DATABASE_URL and REDIS_URL set.
pub fn config(overrides: &[(&str, &str)]) -> Config {
    let mut vars = Vars::new();
    for (key, value) in [
        ("BIND_ADDR", "127.0.0.1:0"),
        ("COOKIE_SECURE", "false"),
        ("PASSWORD_HASH_MEMORY_KIB", "256"),
        ("PASSWORD_HASH_ITERATIONS", "1"),
        ("RATE_LIMIT_LOGIN", "1000/minute"),
        ("RATE_LIMIT_REGISTER", "1000/minute"),
        ("RATE_LIMIT_API", "10000/minute"),
        ("RATE_LIMIT_LOGIN_ACCOUNT", "1000/minute"),
    ]
    .into_iter()
    .chain(overrides.iter().copied())
    {
        vars.insert(key.to_owned(), value.to_owned());
    }
    Config::from_vars(&vars).unwrap_or_else(|e| panic!("test configuration: {e}"))
}

/// Starts a server with exactly `config` (its data directory is the helper's temporary one).
pub async fn spawn_with_config(config: Config) -> TestApp {
    spawn_app_with(move |c| {
        let data_dir = c.data_dir.clone();
        *c = config;
        // The outbox follows the data directory (it was derived from the default `./data`).
        c.mail.dir = data_dir.join("mail");
        c.data_dir = data_dir;
    })
    .await
}

/// Two instances sharing one fresh schema and one Redis key prefix.
pub struct Cluster {
    /// Instance A.
    pub a: TestApp,
    /// Instance B.
    pub b: TestApp,
    /// The Redis key prefix both use (`None` when the cluster runs without a working Redis).
    pub redis: Option<RedisPrefix>,
    /// The shared schema, held to be dropped last, after the instances.
    _schema: TestSchema,
}

impl Cluster {
    /// Both instances, A first.
    pub fn instances(&self) -> [&TestApp; 2] {
        [&self.a, &self.b]
    }
}

/// Two instances on a fresh schema and Redis prefix, with `overrides` on top of the test
/// configuration; `None` when the services are not configured (the test then skips).
pub async fn cluster(overrides: &[(&str, &str)]) -> Option<Cluster> {
    let (database, redis_url) = both()?;
    let schema = TestSchema::create(&database).await;
    let redis = RedisPrefix::new(&redis_url);
    let database_url = schema.url();
    let mut vars = vec![
        ("DATABASE_URL", database_url.as_str()),
        ("REDIS_URL", redis_url.as_str()),
        ("REDIS_KEY_PREFIX", redis.prefix.as_str()),
    ];
    vars.extend_from_slice(overrides);
    let a = spawn_with_config(config(&vars)).await;
    let b = spawn_with_config(config(&vars)).await;
    Some(Cluster {
        a,
        b,
        redis: Some(redis),
        _schema: schema,
    })
}

/// Two instances on a fresh schema whose REDIS_URL is a closed port: Redis is down from the
/// start, so everything shared goes through the database (and rate limits are per instance).
pub async fn cluster_without_redis(overrides: &[(&str, &str)]) -> Option<Cluster> {
    let database = database_url()?;
    let schema = TestSchema::create(&database).await;
    let closed = closed_port().await;
    let database_url = schema.url();
    let redis_url = format!("redis://{closed}");
    let mut vars = vec![
        ("DATABASE_URL", database_url.as_str()),
        ("REDIS_URL", redis_url.as_str()),
    ];
    vars.extend_from_slice(overrides);
    let a = spawn_with_config(config(&vars)).await;
    let b = spawn_with_config(config(&vars)).await;
    Some(Cluster {
        a,
        b,
        redis: None,
        _schema: schema,
    })
}

/// A loopback address nothing listens on (bound, then released).
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("local address")
}

/// A TCP proxy on a loopback port in front of one service, which a test can cut off and
/// restore. [`TcpProxy::cut`] closes every proxied connection and stops listening, so new
/// connections are refused (ECONNREFUSED), as when the service's host is up but the service is
/// not; [`TcpProxy::reset`] closes every connection and then closes new ones as soon as they
/// are accepted; [`TcpProxy::restore`] proxies again, on the same port.
pub struct TcpProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    acceptor: Mutex<Option<JoinHandle<()>>>,
    connections: Arc<Mutex<JoinSet<()>>>,
    /// While set, new connections are accepted and closed at once (see [`TcpProxy::reset`]).
    resetting: Arc<AtomicBool>,
}

impl TcpProxy {
    /// A proxy to `upstream`, listening.
    pub async fn start(upstream: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let proxy = TcpProxy {
            addr: listener.local_addr().expect("proxy address"),
            upstream,
            acceptor: Mutex::new(None),
            connections: Arc::new(Mutex::new(JoinSet::new())),
            resetting: Arc::new(AtomicBool::new(false)),
        };
        proxy.listen(listener);
        proxy
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn listen(&self, listener: TcpListener) {
        let upstream = self.upstream;
        let connections = Arc::clone(&self.connections);
        let resetting = Arc::clone(&self.resetting);
        let acceptor = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    // Out of descriptors or similar: do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                if resetting.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut set = connections.lock().unwrap_or_else(|e| e.into_inner());
                set.spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                // Reap finished connections so the set does not grow without bound.
                while set.try_join_next().is_some() {}
            }
        });
        *self.acceptor.lock().unwrap_or_else(|e| e.into_inner()) = Some(acceptor);
    }

    /// Closes every connection and refuses new ones until [`TcpProxy::restore`].
    pub async fn cut(&self) {
        let acceptor = self.acceptor.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(acceptor) = acceptor {
            acceptor.abort();
            let _ = acceptor.await; // the listener is closed once the task is gone
        }
        self.close_connections().await;
    }

    /// Closes every connection, and keeps accepting new ones only to close them at once (as a
    /// service that crashes on every connection, or a pooler that cannot reach its server),
    /// until [`TcpProxy::restore`].
    pub async fn reset(&self) {
        self.resetting.store(true, Ordering::SeqCst);
        self.close_connections().await;
    }

    async fn close_connections(&self) {
        let mut open = std::mem::take(&mut *self.connections.lock().unwrap_or_else(|e| e.into_inner()));
        open.abort_all();
        while open.join_next().await.is_some() {}
    }

    /// Proxies again (listening again on the same port after [`TcpProxy::cut`]).
    pub async fn restore(&self) {
        self.resetting.store(false, Ordering::SeqCst);
        if self.acceptor.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
            return;
        }
        let started = std::time::Instant::now();
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(e) if started.elapsed() < Duration::from_secs(3) => {
                    eprintln!("proxy: rebinding {} failed ({e}); retrying", self.addr);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("the proxy could not listen on {} again: {e}", self.addr),
            }
        };
        self.listen(listener);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(acceptor) = self.acceptor.lock().unwrap_or_else(|e| e.into_inner()).take() {
            acceptor.abort();
        }
        self.connections.lock().unwrap_or_else(|e| e.into_inner()).abort_all();
    }
}
