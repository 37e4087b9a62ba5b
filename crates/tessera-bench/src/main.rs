//! `tessera-bench`: the load generator of Tessera's benchmark suite (`scripts/bench.sh`).
//!
//! It drives one running server over HTTP/1.1 keep-alive connections on loopback, one request
//! in flight per connection (closed loop, like wrk), and prints one table row per scenario:
//! requests per second, p50 and p99 latency, and the answers that were not 2xx. What wrk cannot
//! do honestly is done here: every `/refresh` connection carries its own rotation chain (the
//! next request presents the refresh token the previous answer returned), and the login flood
//! runs at the same time as a fixed-rate `/profile` stream whose latency is measured from the
//! moment each request was due (no coordinated omission).
//!
//! Output lines start with `ROW|` (a table row, `|`-separated: the server's CPU time per
//! request over the scenario, read from `/proc/PID/stat`, then its RSS right after the
//! scenario) or `NOTE|` (a measured fact or a ratio); the script assembles them. Usage: `tessera-bench --addr 127.0.0.1:18080 --pid 1234
//! --label SQLite [--seconds 10] [--connections 64] [--only profile]`.
//!
//! The gateway scenarios (`gateway`, `sse`, `streams`; module `gateway`) also take the
//! addresses of the bench upstream and of nginx in front of it (`--upstream`, `--nginx`,
//! `--nginx-auth`); `tessera-bench upstream --port N` is that upstream (module `upstream`).
//!
//! `--bare ADDR --bare-pid PID` adds the bare baseline (`tessera-bench bare`, module `bare`):
//! the same `/profile` and `/agent/chat` contract on a bare hyper server, measured in the same
//! run, with the ratio of CPU per request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use tessera_core::password::{PasswordHasher, PasswordParams};
use tokio::net::TcpStream;

mod bare;
mod gateway;
mod upstream;

/// Command-line settings.
#[derive(Clone, Debug)]
struct Args {
    addr: SocketAddr,
    pid: Option<u32>,
    label: String,
    seconds: f64,
    connections: usize,
    /// Connections of the login scenario and of the login flood.
    login_connections: usize,
    /// Only these scenarios (comma list); all when empty.
    only: Vec<String>,
    users: usize,
    hash: PasswordParams,
    /// The server's HASH_WORKERS, for the login overhead ratio.
    hash_workers: Option<usize>,
    /// The bench upstream (`tessera-bench upstream`) the server's UPSTREAMS points at.
    upstream: Option<SocketAddr>,
    /// nginx `proxy_pass` to the upstream, no auth: gateway scenario (a).
    nginx: Option<SocketAddr>,
    /// nginx `auth_request` to the server's `/auth/nginx`, then `proxy_pass`: scenario (c).
    nginx_auth: Option<SocketAddr>,
    /// Event streams held open through the gateway for the RSS reading.
    streams: usize,
    /// Samples of the SSE first-event latency, direct and through the gateway each.
    sse_samples: usize,
    /// The upstream's interval between events; the open streams are held for two of them.
    sse_interval: Duration,
    /// The bare baseline (`tessera-bench bare`) and its pid.
    bare: Option<(SocketAddr, Option<u32>)>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        addr: "127.0.0.1:18080".parse()?,
        pid: None,
        label: "server".into(),
        seconds: 10.0,
        connections: 64,
        login_connections: 16,
        only: Vec::new(),
        users: 8,
        hash: PasswordParams::default(),
        hash_workers: None,
        upstream: None,
        nginx: None,
        nginx_auth: None,
        streams: 1000,
        sse_samples: 300,
        sse_interval: Duration::from_millis(1000),
        bare: None,
    };
    let mut bare_pid = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => args.addr = value()?.parse().context("--addr")?,
            "--pid" => args.pid = Some(value()?.parse().context("--pid")?),
            "--label" => args.label = value()?,
            "--seconds" => args.seconds = value()?.parse().context("--seconds")?,
            "--connections" => args.connections = value()?.parse().context("--connections")?,
            "--login-connections" => args.login_connections = value()?.parse().context("--login-connections")?,
            "--hash-workers" => args.hash_workers = Some(value()?.parse().context("--hash-workers")?),
            "--users" => args.users = value()?.parse().context("--users")?,
            "--only" => args.only = value()?.split(',').map(str::to_owned).collect(),
            "--upstream" => args.upstream = Some(value()?.parse().context("--upstream")?),
            "--nginx" => args.nginx = Some(value()?.parse().context("--nginx")?),
            "--nginx-auth" => args.nginx_auth = Some(value()?.parse().context("--nginx-auth")?),
            "--bare" => args.bare = Some((value()?.parse().context("--bare")?, None)),
            "--bare-pid" => bare_pid = Some(value()?.parse().context("--bare-pid")?),
            "--streams" => args.streams = value()?.parse().context("--streams")?,
            "--sse-samples" => args.sse_samples = value()?.parse().context("--sse-samples")?,
            "--sse-interval-ms" => {
                args.sse_interval = Duration::from_millis(value()?.parse().context("--sse-interval-ms")?);
            }
            "--hash" => {
                let parts: Vec<u32> = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .context("--hash m_kib,t,p")?;
                let [memory_kib, iterations, parallelism] = parts[..] else {
                    bail!("--hash takes m_kib,t,p");
                };
                args.hash = PasswordParams {
                    memory_kib,
                    iterations,
                    parallelism,
                };
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if let Some((_, pid)) = &mut args.bare {
        *pid = bare_pid;
    }
    if args.connections == 0 || args.login_connections == 0 || args.users == 0 || args.seconds <= 0.0 {
        bail!("--connections, --login-connections, --users and --seconds must be positive");
    }
    Ok(args)
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Result<Conn> {
        let stream = TcpStream::connect(addr).await.context("connect")?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn {
            sender,
            host: addr.to_string(),
        })
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        json: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes)> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host);
        if let Some(token) = bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if json.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(json.unwrap_or_default()))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// What one connection does, request after request.
#[derive(Clone, Debug)]
enum Work {
    Get {
        path: &'static str,
        bearer: Option<Arc<str>>,
    },
    Post {
        path: &'static str,
        bearer: Option<Arc<str>>,
        json: Bytes,
    },
    /// POST /refresh presenting the token the previous answer returned.
    Refresh { token: String },
    /// POST /login; the refresh tokens of the answers are kept (they seed the refresh chains).
    Login { json: Bytes },
}

/// What one connection measured.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    /// Every answer, warm-up included (the CPU reading spans the warm-up too).
    answered: u64,
    ok: u64,
    failed: u64,
    statuses: Vec<u16>,
    refresh_tokens: Vec<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.ok += other.ok;
        self.answered += other.answered;
        self.failed += other.failed;
        for status in other.statuses {
            if !self.statuses.contains(&status) {
                self.statuses.push(status);
            }
        }
        self.refresh_tokens.extend(other.refresh_tokens);
    }
}

fn refresh_token_of(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("refresh_token")?.as_str().map(str::to_owned)
}

/// Runs `work` on one connection until `stop`, counting what completes after `measure_from`.
/// With `interval`, requests are due at fixed times and latency counts from the due time.
async fn drive(
    addr: SocketAddr,
    mut work: Work,
    measure_from: Instant,
    until: Instant,
    interval: Option<Duration>,
    stop: Arc<AtomicBool>,
) -> Result<Tally> {
    let mut conn = Conn::open(addr).await?;
    let mut tally = Tally::default();
    let mut due = Instant::now();
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        let started = match interval {
            Some(interval) => {
                tokio::time::sleep_until(due.into()).await;
                let this = due;
                due += interval;
                this
            }
            None => Instant::now(),
        };
        let (status, body) = match &work {
            Work::Get { path, bearer } => conn.send(Method::GET, path, bearer.as_deref(), None).await?,
            Work::Post { path, bearer, json } => {
                conn.send(Method::POST, path, bearer.as_deref(), Some(json.clone()))
                    .await?
            }
            Work::Refresh { token } => {
                let json = serde_json::to_vec(&serde_json::json!({ "refresh_token": token }))?;
                conn.send(Method::POST, "/refresh", None, Some(json.into())).await?
            }
            Work::Login { json } => conn.send(Method::POST, "/login", None, Some(json.clone())).await?,
        };
        let finished = Instant::now();
        tally.answered += 1;
        let success = status.is_success();
        if success {
            match &mut work {
                Work::Refresh { token } => match refresh_token_of(&body) {
                    Some(next) => *token = next,
                    None => bail!("a /refresh answer without a refresh token"),
                },
                Work::Login { .. } => tally.refresh_tokens.extend(refresh_token_of(&body)),
                _ => {}
            }
        }
        if started >= measure_from && finished <= until {
            let micros = finished.duration_since(started).as_micros();
            tally.latencies_us.push(u32::try_from(micros).unwrap_or(u32::MAX));
            if success {
                tally.ok += 1;
            } else {
                tally.failed += 1;
                if !tally.statuses.contains(&status.as_u16()) {
                    tally.statuses.push(status.as_u16());
                }
            }
        }
        if !success && matches!(work, Work::Refresh { .. }) {
            // The chain is broken (a rotation was refused): nothing honest to measure further.
            break;
        }
    }
    Ok(tally)
}

/// The measured result of one scenario.
struct Outcome {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    tally: Tally,
    /// The server's CPU time (user + system, all threads) per answered request, microseconds.
    cpu_us: Option<f64>,
}

/// The CPU time a process has used so far (user + system, every thread), in seconds, from
/// `/proc/PID/stat` (fields 14 and 15, in clock ticks).
fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// Clock ticks per second (`getconf CLK_TCK`; Linux's USER_HZ is 100 on every common target).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t: &f64| *t > 0.0)
            .unwrap_or(100.0)
    })
}

fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

/// Runs one `Work` per connection for `seconds` (after a warm-up of a fifth of that, not
/// counted, at most one second) and summarises.
async fn run(args: &Args, works: Vec<Work>, interval: Option<Duration>) -> Result<Outcome> {
    let warmup = Duration::from_secs_f64((args.seconds / 5.0).min(1.0));
    let measured = Duration::from_secs_f64(args.seconds);
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + warmup;
    let until = measure_from + measured;
    let stop = Arc::new(AtomicBool::new(false));
    let cpu_before = cpu_seconds(args.pid);
    let tasks: Vec<_> = works
        .into_iter()
        .map(|work| tokio::spawn(drive(args.addr, work, measure_from, until, interval, Arc::clone(&stop))))
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        total.merge(task.await??);
    }
    let cpu_us = match (cpu_before, cpu_seconds(args.pid)) {
        (Some(before), Some(after)) if total.answered > 0 => Some((after - before) * 1e6 / total.answered as f64),
        _ => None,
    };
    total.latencies_us.sort_unstable();
    Ok(Outcome {
        rps: total.ok as f64 / measured.as_secs_f64(),
        p50_ms: percentile(&total.latencies_us, 0.50),
        p99_ms: percentile(&total.latencies_us, 0.99),
        tally: total,
        cpu_us,
    })
}

fn row(args: &Args, scenario: &str, connections: usize, outcome: &Outcome) {
    let mut statuses = outcome.tally.statuses.clone();
    statuses.sort_unstable();
    let failed = if outcome.tally.failed == 0 {
        "0".to_owned()
    } else {
        let codes: Vec<String> = statuses.iter().map(u16::to_string).collect();
        format!("{} ({})", outcome.tally.failed, codes.join(","))
    };
    let rss = rss_mib(args.pid).map_or_else(|| "-".to_owned(), |mib| format!("{mib:.1}"));
    let cpu = outcome.cpu_us.map_or_else(|| "-".to_owned(), |us| format!("{us:.1}"));
    println!(
        "ROW|{}|{}|{}|{:.0}|{:.2}|{:.2}|{}|{}|{}",
        args.label, scenario, connections, outcome.rps, outcome.p50_ms, outcome.p99_ms, failed, cpu, rss
    );
}

fn note(args: &Args, text: &str) {
    println!("NOTE|{}: {}", args.label, text);
}

/// Resident memory of the server, MiB, from /proc.
fn rss_mib(pid: Option<u32>) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The fastest of `rounds` argon2id hashes with the server's parameters, on this machine, now:
/// on a shared machine the best case is the least disturbed one, and it makes the login bound
/// the hardest to meet.
fn hash_seconds(params: PasswordParams, rounds: usize) -> Result<f64> {
    let hasher = PasswordHasher::new(params, &[7; 16]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut times: Vec<f64> = (0..rounds.max(1))
        .map(|i| {
            let started = Instant::now();
            let _ = hasher.hash("bench-password-0123", &[i as u8; 16]);
            started.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    Ok(times[0])
}

struct Account {
    login_json: Bytes,
    access: Arc<str>,
    /// An API key of the account with `profile:read` (G3).
    api_key: Arc<str>,
}

/// Registers and logs in `args.users` fresh accounts.
async fn accounts(args: &Args) -> Result<Vec<Account>> {
    let mut conn = Conn::open(args.addr).await?;
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_micros();
    let mut out = Vec::new();
    for i in 0..args.users {
        let username = format!("bench{run}x{i}");
        let password = format!("Quiet-Meadow-{i}-Lantern");
        let register = serde_json::json!({
            "email": format!("{username}@bench.example"),
            "username": username,
            "password": password,
        });
        let (status, body) = conn
            .send(
                Method::POST,
                "/register",
                None,
                Some(serde_json::to_vec(&register)?.into()),
            )
            .await?;
        if status != StatusCode::CREATED {
            bail!("register answered {status}: {}", String::from_utf8_lossy(&body));
        }
        let login_json: Bytes =
            serde_json::to_vec(&serde_json::json!({ "username": username, "password": password }))?.into();
        let (status, body) = conn
            .send(Method::POST, "/login", None, Some(login_json.clone()))
            .await?;
        if status != StatusCode::OK {
            bail!("login answered {status}: {}", String::from_utf8_lossy(&body));
        }
        let value: serde_json::Value = serde_json::from_slice(&body)?;
        let access = value
            .get("access_token")
            .and_then(|v| v.as_str())
            .context("login answer without access_token")?;
        let new_key = serde_json::json!({ "name": "bench", "scopes": ["profile:read"] });
        let (status, body) = conn
            .send(
                Method::POST,
                "/api-keys",
                Some(access),
                Some(serde_json::to_vec(&new_key)?.into()),
            )
            .await?;
        if status != StatusCode::CREATED {
            bail!("POST /api-keys answered {status}: {}", String::from_utf8_lossy(&body));
        }
        let created: serde_json::Value = serde_json::from_slice(&body)?;
        let api_key = created
            .get("key")
            .and_then(|v| v.as_str())
            .context("POST /api-keys answer without key")?;
        out.push(Account {
            login_json,
            access: access.into(),
            api_key: api_key.into(),
        });
    }
    Ok(out)
}

async fn bench(args: Args) -> Result<()> {
    let wants = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let idle = rss_mib(args.pid);
    if let Some(idle) = idle {
        note(&args, &format!("server RSS idle: {idle:.1} MiB"));
    }
    let users = accounts(&args).await?;
    let profile_works = |n: usize| -> Vec<Work> {
        (0..n)
            .map(|i| Work::Get {
                path: "/profile",
                bearer: Some(Arc::clone(&users[i % users.len()].access)),
            })
            .collect()
    };
    let login_works = |n: usize| -> Vec<Work> {
        (0..n)
            .map(|i| Work::Login {
                json: users[i % users.len()].login_json.clone(),
            })
            .collect()
    };
    let c = args.connections;
    let mut healthz_rps = None;
    let mut profile = None;
    let mut profile_cpu = None;
    let mut chat_cpu = None;

    let healthz_works = || {
        vec![
            Work::Get {
                path: "/healthz",
                bearer: None,
            };
            c
        ]
    };
    if wants("healthz") {
        let outcome = run(&args, healthz_works(), None).await?;
        row(&args, "GET /healthz", c, &outcome);
        healthz_rps = Some(outcome.rps);
    }
    if wants("profile") {
        let outcome = run(&args, profile_works(c), None).await?;
        row(&args, "GET /profile", c, &outcome);
        if let Some(before) = healthz_rps {
            // /healthz again right after, so that a drift of the machine's load during the two
            // runs weighs on both sides of the ratio.
            let again = run(&args, healthz_works(), None).await?;
            row(&args, "GET /healthz (again)", c, &again);
            let healthz = (before + again.rps) / 2.0;
            note(
                &args,
                &format!(
                    "/profile / /healthz (mean of the runs before and after) = {:.2} (target >= 0.85)",
                    outcome.rps / healthz
                ),
            );
        }
        profile = Some(outcome.rps);
        profile_cpu = outcome.cpu_us;
    }
    if wants("profile_key") {
        // The same route with an API key instead of an access token: the key cache's hot path.
        let works = (0..c)
            .map(|i| Work::Get {
                path: "/profile",
                bearer: Some(Arc::clone(&users[i % users.len()].api_key)),
            })
            .collect();
        let outcome = run(&args, works, None).await?;
        row(&args, "GET /profile (API key)", c, &outcome);
        if let Some(healthz) = healthz_rps {
            note(
                &args,
                &format!(
                    "/profile with a key / /healthz = {:.2} (target >= 0.85)",
                    outcome.rps / healthz
                ),
            );
        }
    }
    if wants("chat") {
        let works = (0..c)
            .map(|i| Work::Post {
                path: "/agent/chat",
                bearer: Some(Arc::clone(&users[i % users.len()].access)),
                json: Bytes::from_static(br#"{"message":"hello"}"#),
            })
            .collect();
        let outcome = run(&args, works, None).await?;
        row(&args, "POST /agent/chat", c, &outcome);
        chat_cpu = outcome.cpu_us;
    }
    if let Some((addr, pid)) = args.bare {
        bare_baseline(&args, addr, pid, profile_cpu, chat_cpu).await?;
    }
    let mut seeds = Vec::new();
    if wants("login") {
        let hash = hash_seconds(args.hash, if args.seconds < 3.0 { 1 } else { 5 })?;
        let bound = cores as f64 / hash;
        let lc = args.login_connections;
        let outcome = run(&args, login_works(lc), None).await?;
        row(&args, "POST /login", lc, &outcome);
        note(
            &args,
            &format!(
                "one argon2id hash ({} KiB, t={}, p={}) takes {:.1} ms here: {cores} cores / hash = {bound:.1}/s; /login = {:.2} x that (target >= 0.9)",
                args.hash.memory_kib,
                args.hash.iterations,
                args.hash.parallelism,
                hash * 1000.0,
                outcome.rps / bound
            ),
        );
        if let Some(workers) = args.hash_workers {
            let ceiling = workers as f64 / hash;
            note(
                &args,
                &format!(
                    "with HASH_WORKERS={workers} the hashing ceiling is {ceiling:.1}/s: /login = {:.2} x that (the overhead beyond hashing)",
                    outcome.rps / ceiling
                ),
            );
        }
        seeds = outcome.tally.refresh_tokens;
    }
    if wants("refresh") {
        // Each connection rotates its own session; the sessions come from the login scenario
        // (or fresh logins when it did not run).
        let mut conn = Conn::open(args.addr).await?;
        while seeds.len() < c {
            let json = users[seeds.len() % users.len()].login_json.clone();
            let (status, body) = conn.send(Method::POST, "/login", None, Some(json)).await?;
            match (status, refresh_token_of(&body)) {
                (StatusCode::OK, Some(token)) => seeds.push(token),
                _ => bail!("seeding login answered {status}"),
            }
        }
        let works = seeds.drain(..c).map(|token| Work::Refresh { token }).collect();
        let outcome = run(&args, works, None).await?;
        row(&args, "POST /refresh (chained)", c, &outcome);
    }
    if wants("flood")
        && let Some(profile) = profile
    {
        // /profile at a steady quarter of its measured capacity, alone and then while a login
        // flood keeps the hashing pool saturated (and its queue full: most flood requests get
        // 503, which is the point).
        let streams = 16.min(c);
        let rate = (profile / 4.0).max(100.0);
        let interval = Duration::from_secs_f64(streams as f64 / rate);
        let alone = run(&args, profile_works(streams), Some(interval)).await?;
        row(&args, &format!("GET /profile at {rate:.0}/s"), streams, &alone);
        let flood_args = Args {
            seconds: args.seconds + 2.0,
            ..args.clone()
        };
        let flood_connections = args.login_connections * 2;
        let flood = {
            let works = login_works(flood_connections);
            tokio::spawn(async move { run(&flood_args, works, None).await })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut during = run(&args, profile_works(streams), Some(interval)).await?;
        // The server's CPU during the flood is mostly the flood's hashing: per /profile request
        // it would mean nothing.
        during.cpu_us = None;
        row(
            &args,
            &format!("GET /profile at {rate:.0}/s during login flood"),
            streams,
            &during,
        );
        let mut flood = flood.await??;
        flood.cpu_us = None;
        row(&args, "POST /login (the flood)", flood_connections, &flood);
        note(
            &args,
            &format!(
                "p99 /profile during the flood / alone = {:.2} (target <= 2)",
                during.p99_ms / alone.p99_ms
            ),
        );
    }
    if wants("gateway")
        && let Some(nginx) = args.nginx
    {
        gateway::throughput(&args, &users, nginx, args.nginx_auth).await?;
    }
    if wants("sse")
        && let Some(upstream) = args.upstream
    {
        gateway::sse_first_event(&args, &users, upstream, args.sse_samples).await?;
    }
    if wants("streams") && args.upstream.is_some() {
        let hold = args.sse_interval * 2 + Duration::from_millis(100);
        gateway::open_streams(&args, &users, args.streams, hold).await?;
    }
    if let Some(end) = rss_mib(args.pid) {
        note(&args, &format!("server RSS at the end of the load: {end:.1} MiB"));
    }
    Ok(())
}

/// The bare baseline's `/profile` and `/agent/chat` with the same connections, and the ratio
/// of the server's CPU per request to the baseline's (issue [8/9]'s measure: what the stack
/// costs on top of an HTTP server and a token check).
async fn bare_baseline(
    args: &Args,
    addr: SocketAddr,
    pid: Option<u32>,
    profile_cpu: Option<f64>,
    chat_cpu: Option<f64>,
) -> Result<()> {
    let mut conn = Conn::open(addr).await?;
    let (status, token) = conn.send(Method::GET, "/token", None, None).await?;
    if status != StatusCode::OK {
        bail!("the bare baseline's /token answered {status}");
    }
    let token: Arc<str> = String::from_utf8(token.to_vec())?.into();
    let at_bare = Args {
        addr,
        pid,
        label: format!("{} (bare baseline)", args.label),
        ..args.clone()
    };
    let c = args.connections;
    let ratio = |ours: Option<f64>, bare: Option<f64>| match (ours, bare) {
        (Some(ours), Some(bare)) if bare > 0.0 => format!("{:.2}", ours / bare),
        _ => "-".to_owned(),
    };
    let profile = (0..c)
        .map(|_| Work::Get {
            path: "/profile",
            bearer: Some(Arc::clone(&token)),
        })
        .collect();
    let outcome = run(&at_bare, profile, None).await?;
    row(&at_bare, "GET /profile (bare hyper + HS256)", c, &outcome);
    note(
        args,
        &format!(
            "CPU per request, /profile / bare baseline = {} (target <= 1.3 on SQLite, <= 1.5 on PostgreSQL+Redis)",
            ratio(profile_cpu, outcome.cpu_us)
        ),
    );
    let chat = (0..c)
        .map(|_| Work::Post {
            path: "/agent/chat",
            bearer: Some(Arc::clone(&token)),
            json: Bytes::from_static(br#"{"message":"hello"}"#),
        })
        .collect();
    let outcome = run(&at_bare, chat, None).await?;
    row(&at_bare, "POST /agent/chat (bare hyper + HS256)", c, &outcome);
    note(
        args,
        &format!(
            "CPU per request, /agent/chat / bare baseline = {} (same targets)",
            ratio(chat_cpu, outcome.cpu_us)
        ),
    );
    Ok(())
}

fn main() -> Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("upstream") => return upstream::main(std::env::args().skip(2)),
        Some("bare") => return bare::main(std::env::args().skip(2)),
        _ => {}
    }
    let args = parse_args()?;
    // Two load threads, like `wrk -t2`: the generator shares the machine with the server.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(bench(args))
}
