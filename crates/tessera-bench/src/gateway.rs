//! The gateway scenarios (issue #15, "Performance"): the same upstream (`tessera-bench
//! upstream`) behind (a) nginx `proxy_pass` without auth, (b) Tessera's gateway with a Bearer
//! token and (c) nginx `auth_request` to Tessera's `/auth/nginx`, measured in one run so that
//! the ratios (b)/(a) and (c)/(a) compare like with like; then the first-event latency of a
//! server-sent-event stream direct and through the gateway, and the server's RSS while many
//! streams are held open through it.
//!
//! `scripts/bench.sh` (backend `gateway`) starts the upstream, nginx and the server and passes
//! their addresses: `--upstream`, `--nginx` (a) and `--nginx-auth` (c, only when the server
//! answers `/auth/nginx`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode, header};

use super::{Account, Args, Conn, Work, note, percentile, row, rss_mib, run};

/// The path every throughput scenario asks for: `/agent/` is the prefix nginx and Tessera
/// proxy, `/hello` is what the upstream sees (a small fixed body).
const PLAIN_PATH: &str = "/agent/hello";
/// The streaming path through a proxy; the upstream answers any path ending in `sse`.
const SSE_PATH: &str = "/agent/sse";

fn works(users: &[Account], connections: usize) -> Vec<Work> {
    (0..connections)
        .map(|i| Work::Get {
            path: PLAIN_PATH,
            bearer: Some(Arc::clone(&users[i % users.len()].access)),
        })
        .collect()
}

/// Throughput of (a), (b), Tessera alone (a reference) and (c), then (a) again; the ratios use
/// the mean of the two (a) runs, so that a drift of the machine's load weighs on both sides.
pub async fn throughput(
    args: &Args,
    users: &[Account],
    nginx: SocketAddr,
    nginx_auth: Option<SocketAddr>,
) -> Result<()> {
    let c = args.connections;
    // The nginx rows show no RSS: the server is not in their path.
    let at_nginx = Args {
        addr: nginx,
        pid: None,
        ..args.clone()
    };
    let nginx_alone = run(&at_nginx, works(users, c), None).await?;
    row(
        &at_nginx,
        "(a) nginx proxy_pass, no auth: GET /agent/hello",
        c,
        &nginx_alone,
    );
    let gateway = run(args, works(users, c), None).await?;
    row(args, "(b) Tessera gateway, Bearer: GET /agent/hello", c, &gateway);
    // A reference, not a target: the same authentication on the same server with no proxying
    // and no assertion, to tell the gateway's own cost from the authentication's.
    let profile = (0..c)
        .map(|i| Work::Get {
            path: "/profile",
            bearer: Some(Arc::clone(&users[i % users.len()].access)),
        })
        .collect();
    let outcome = run(args, profile, None).await?;
    row(args, "(reference) Tessera alone, Bearer: GET /profile", c, &outcome);
    let forward = match nginx_auth {
        Some(addr) => {
            let at = Args { addr, ..args.clone() };
            let outcome = run(&at, works(users, c), None).await?;
            row(
                &at,
                "(c) nginx auth_request to Tessera /auth/nginx, Bearer: GET /agent/hello",
                c,
                &outcome,
            );
            Some(outcome)
        }
        None => None,
    };
    let again = run(&at_nginx, works(users, c), None).await?;
    row(&at_nginx, "(a) nginx proxy_pass, no auth (again)", c, &again);
    let baseline = (nginx_alone.rps + again.rps) / 2.0;
    note(
        args,
        &format!(
            "gateway (b) / nginx (a) = {:.2} in req/s (target >= 0.8; (a) is the mean of its runs before and after)",
            gateway.rps / baseline
        ),
    );
    if let Some(forward) = forward {
        note(
            args,
            &format!(
                "forward auth (c) / nginx (a) = {:.2} in req/s (target >= 0.7)",
                forward.rps / baseline
            ),
        );
    }
    Ok(())
}

/// Sends a GET for an event stream on `conn` and waits for its first data frame; returns the
/// status, the time from sending to that frame, and the rest of the body.
async fn first_event(conn: &mut Conn, path: &str, bearer: Option<&str>) -> Result<(StatusCode, Duration, Incoming)> {
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::HOST, &conn.host)
        .header(header::ACCEPT, "text/event-stream");
    if let Some(token) = bearer {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(Full::new(Bytes::new()))?;
    conn.sender.ready().await?;
    let started = Instant::now();
    let response = conn.sender.send_request(request).await?;
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        return Ok((status, started.elapsed(), body));
    }
    loop {
        match body.frame().await {
            Some(Ok(frame)) if frame.data_ref().is_some_and(|d| !d.is_empty()) => break,
            Some(Ok(_)) => continue,
            Some(Err(error)) => return Err(error).context("event stream broken before its first event"),
            None => bail!("event stream ended before its first event"),
        }
    }
    Ok((status, started.elapsed(), body))
}

/// The time to the first event of a stream, direct to the upstream and through the gateway,
/// alternating sample by sample (a fresh connection each, opened before the clock starts).
pub async fn sse_first_event(args: &Args, users: &[Account], upstream: SocketAddr, samples: usize) -> Result<()> {
    let mut direct = Vec::with_capacity(samples);
    let mut gateway = Vec::with_capacity(samples);
    let (mut direct_time, mut gateway_time) = (Duration::ZERO, Duration::ZERO);
    let mut failed = 0u64;
    for i in 0..samples {
        let mut conn = Conn::open(upstream).await?;
        let (status, elapsed, _) = first_event(&mut conn, "/sse", None).await?;
        if !status.is_success() {
            bail!("the upstream answered {status} to GET /sse");
        }
        direct.push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
        direct_time += elapsed;
        drop(conn);

        let mut conn = Conn::open(args.addr).await?;
        let token = &users[i % users.len()].access;
        let (status, elapsed, _) = first_event(&mut conn, SSE_PATH, Some(token)).await?;
        if status.is_success() {
            gateway.push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
            gateway_time += elapsed;
        } else {
            failed += 1;
        }
    }
    direct.sort_unstable();
    gateway.sort_unstable();
    let summary = |latencies: &[u32], time: Duration| super::Outcome {
        rps: latencies.len() as f64 / time.as_secs_f64().max(1e-9),
        p50_ms: percentile(latencies, 0.50),
        p99_ms: percentile(latencies, 0.99),
        tally: super::Tally::default(),
        cpu_us: None,
    };
    let direct_outcome = summary(&direct, direct_time);
    let mut gateway_outcome = summary(&gateway, gateway_time);
    gateway_outcome.tally.failed = failed;
    if failed > 0 {
        gateway_outcome.tally.statuses.push(0);
    }
    let no_rss = Args {
        pid: None,
        ..args.clone()
    };
    row(&no_rss, "SSE first event, direct to the upstream", 1, &direct_outcome);
    row(
        args,
        "SSE first event, through the Tessera gateway",
        1,
        &gateway_outcome,
    );
    note(
        args,
        &format!(
            "SSE first-event latency added by the gateway at p50 = {:.3} ms ({:.3} - {:.3}; {samples} alternating samples, each on a fresh connection; target <= 1 ms)",
            gateway_outcome.p50_ms - direct_outcome.p50_ms,
            gateway_outcome.p50_ms,
            direct_outcome.p50_ms,
        ),
    );
    Ok(())
}

/// Opens `streams` event streams through the gateway (64 opening at a time), holds them while
/// the upstream keeps sending, reads the server's RSS with all of them open, then closes them.
pub async fn open_streams(args: &Args, users: &[Account], streams: usize, hold: Duration) -> Result<()> {
    let rss_before = rss_mib(args.pid);
    let opening = Arc::new(tokio::sync::Semaphore::new(64));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::unbounded_channel::<Result<u32, String>>();
    let events = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(streams);
    for i in 0..streams {
        let token = Arc::clone(&users[i % users.len()].access);
        let opening = Arc::clone(&opening);
        let opened = opened_tx.clone();
        let mut stop = stop_rx.clone();
        let events = Arc::clone(&events);
        let addr = args.addr;
        tasks.push(tokio::spawn(async move {
            let permit = opening.acquire_owned().await;
            let attempt = async {
                let mut conn = Conn::open(addr).await?;
                let (status, elapsed, body) = first_event(&mut conn, SSE_PATH, Some(&token)).await?;
                anyhow::Ok((conn, status, elapsed, body))
            };
            // Each task reports exactly once, opened or not.
            let (conn, mut body) = match attempt.await {
                Ok((conn, status, elapsed, body)) if status.is_success() => {
                    let _ = opened.send(Ok(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX)));
                    (conn, body)
                }
                Ok((_, status, _, _)) => {
                    let _ = opened.send(Err(status.to_string()));
                    return;
                }
                Err(error) => {
                    let _ = opened.send(Err(format!("{error:#}")));
                    return;
                }
            };
            drop(permit);
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    frame = body.frame() => match frame {
                        Some(Ok(frame)) if frame.is_data() => {
                            events.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                }
            }
            drop(body);
            drop(conn);
        }));
    }
    drop(opened_tx);
    let mut latencies = Vec::with_capacity(streams);
    let mut errors: Vec<String> = Vec::new();
    // Counted, not read to the channel's end: the open streams' tasks keep their senders.
    for _ in 0..streams {
        match opened_rx.recv().await {
            Some(Ok(micros)) => latencies.push(micros),
            Some(Err(error)) => errors.push(error),
            None => break,
        }
    }
    let open_phase = started.elapsed();
    let events_before_hold = events.load(std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(hold).await;
    let events_in_hold = events.load(std::sync::atomic::Ordering::Relaxed) - events_before_hold;
    let rss_open = rss_mib(args.pid);
    latencies.sort_unstable();
    let mut tally = super::Tally {
        failed: errors.len() as u64,
        ..Default::default()
    };
    if !errors.is_empty() {
        tally.statuses.push(0);
    }
    let outcome = super::Outcome {
        rps: latencies.len() as f64 / open_phase.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        tally,
        cpu_us: None,
    };
    row(
        args,
        &format!("GET /agent/sse, {streams} streams held open (req/s: opened/s; p50/p99: first event)"),
        streams,
        &outcome,
    );
    let show = |mib: Option<f64>| mib.map_or_else(|| "-".to_owned(), |m| format!("{m:.1}"));
    note(
        args,
        &format!(
            "server RSS with {} of {streams} streams open through the gateway = {} MiB (before opening them: {} MiB; target <= 64 MiB at 1,000); {events_in_hold} events relayed during the {:.1} s hold",
            latencies.len(),
            show(rss_open),
            show(rss_before),
            hold.as_secs_f64(),
        ),
    );
    if let Some(first) = errors.first() {
        note(args, &format!("{} streams failed to open, e.g.: {first}", errors.len()));
    }
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}
