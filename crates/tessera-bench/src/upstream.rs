//! `tessera-bench upstream`: the minimal HTTP/1.1 server every gateway scenario proxies to, so
//! that nginx alone, Tessera's gateway and nginx with Tessera's forward auth are measured
//! against the same upstream.
//!
//! Any path ending in `sse` answers a server-sent-event stream: one event at once, then one
//! every `--sse-interval-ms` until the client goes away. Any other request gets a small fixed
//! body. It does nothing else (no logging, no routing), so that its cost is the same small
//! constant under every proxy. Usage: `tessera-bench upstream --port 19000
//! [--sse-interval-ms 1000] [--threads 2]`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The fixed answer to a plain GET (a small JSON document, like an agent's status call).
const BODY: &[u8] = br#"{"ok":true,"from":"bench-upstream"}"#;

/// Command-line settings of the upstream.
struct UpstreamArgs {
    port: u16,
    sse_interval: Duration,
    threads: usize,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<UpstreamArgs> {
    let mut args = UpstreamArgs {
        port: 19000,
        sse_interval: Duration::from_millis(1000),
        threads: 2,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => args.port = value()?.parse().context("--port")?,
            "--sse-interval-ms" => {
                args.sse_interval = Duration::from_millis(value()?.parse().context("--sse-interval-ms")?);
            }
            "--threads" => args.threads = value()?.parse().context("--threads")?,
            other => bail!("unknown upstream argument {other}"),
        }
    }
    if args.threads == 0 || args.sse_interval.is_zero() {
        bail!("--threads and --sse-interval-ms must be positive");
    }
    Ok(args)
}

/// The two kinds of answer: the fixed body, or an endless event stream.
enum UpstreamBody {
    /// The fixed body, taken on the first poll.
    Fixed(Option<Bytes>),
    /// Events: the first at once, then one per tick.
    Events { ticks: tokio::time::Interval, sent: u64 },
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            UpstreamBody::Fixed(body) => Poll::Ready(body.take().map(|b| Ok(Frame::data(b)))),
            UpstreamBody::Events { ticks, sent } => {
                // The first event goes at once, not on the timer: tokio's timer rounds a
                // deadline up to its next millisecond, which would add up to 1 ms to the
                // first-event latency this upstream is there to be a fixed reference for.
                if *sent > 0 && ticks.poll_tick(cx).is_pending() {
                    return Poll::Pending;
                }
                *sent += 1;
                let event = format!("id: {sent}\nevent: token\ndata: {{\"n\":{sent}}}\n\n");
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(event)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, UpstreamBody::Fixed(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Fixed(Some(body)) => SizeHint::with_exact(body.len() as u64),
            UpstreamBody::Fixed(None) => SizeHint::with_exact(0),
            UpstreamBody::Events { .. } => SizeHint::default(),
        }
    }
}

fn answer(request: &Request<Incoming>, sse_interval: Duration) -> Response<UpstreamBody> {
    if request.uri().path().ends_with("sse") {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + sse_interval, sse_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut response = Response::new(UpstreamBody::Events { ticks, sent: 0 });
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache"));
        response
    } else {
        let mut response = Response::new(UpstreamBody::Fixed(Some(Bytes::from_static(BODY))));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        response
    }
}

async fn serve(args: UpstreamArgs) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = TcpListener::bind(addr).await.with_context(|| format!("bind {addr}"))?;
    eprintln!("bench upstream listening on {addr}");
    let sse_interval = args.sse_interval;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors, most likely: wait a little instead of spinning.
                eprintln!("accept: {error}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| async move {
                Ok::<_, Infallible>(answer(&request, sse_interval))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Runs the upstream until the process is killed.
pub fn main(args: impl Iterator<Item = String>) -> Result<()> {
    let args = parse_args(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}
