//! Talking to the manager: clients with an agent's certificate, one check-in exchange, the
//! inventory upload, and the long-poll loop every simulated agent runs.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use jiff::Timestamp;
use patchdeck_proto::agent::{CheckinResponse, InventoryUpload, MACHINE_ID_HEADER, PROTOCOL_VERSION};
use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE};
use reqwest::{StatusCode, Version};
use tokio::time::Instant;

use crate::fleet::{self, AgentRecord};
use crate::stats::Tally;
use crate::synth::{self, Rng};

/// Where the manager is, and how to reach it.
#[derive(Debug)]
pub struct Endpoint {
    /// `https://host:port`, without a trailing slash.
    pub base: String,
    /// `host:port` as sent in `Host` / `:authority`.
    pub authority: String,
    host: String,
    addr: SocketAddr,
    roots: Vec<reqwest::Certificate>,
    http1: bool,
}

impl Endpoint {
    /// Parses `server`, resolves its host once (every client then connects to that address
    /// without asking DNS again) and reads the CA certificates to trust.
    pub async fn new(server: &str, ca_pem: &[u8], http1: bool) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(server).with_context(|| format!("--server {server:?} is not a URL"))?;
        if url.scheme() != "https" {
            bail!("--server must be an https:// URL (agents speak mutual TLS)");
        }
        let host = url.host_str().context("--server has no host")?.trim_matches(['[', ']']).to_owned();
        let port = url.port_or_known_default().context("--server has no port")?;
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .with_context(|| format!("resolving {host}"))?
            .min_by_key(|a| a.is_ipv6())
            .with_context(|| format!("{host} has no address"))?;
        let roots = reqwest::Certificate::from_pem_bundle(ca_pem).context("--ca-cert is not PEM")?;
        if roots.is_empty() {
            bail!("--ca-cert holds no certificate");
        }
        let authority = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        Ok(Endpoint { base: server.trim_end_matches('/').to_owned(), authority, host, addr, roots, http1 })
    }

    /// A client of its own (its own connection), trusting only the manager's CA, presenting
    /// `identity` (certificate + key PEM) when given. Idle connections are kept for as long as
    /// the run lasts.
    pub fn client(&self, identity: Option<&[u8]>) -> anyhow::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .pool_idle_timeout(None)
            .pool_max_idle_per_host(1)
            .connect_timeout(Duration::from_secs(15))
            .tcp_nodelay(true);
        for root in &self.roots {
            builder = builder.add_root_certificate(root.clone());
        }
        if self.host.parse::<std::net::IpAddr>().is_err() {
            builder = builder.resolve(&self.host, self.addr);
        }
        if self.http1 {
            builder = builder.http1_only();
        }
        if let Some(pem) = identity {
            builder = builder.identity(reqwest::Identity::from_pem(pem).context("the agent's key or certificate")?);
        }
        Ok(builder.build()?)
    }
}

/// One simulated agent: its identity, its inventory hash and its own client (connection) for
/// the long-poll.
#[derive(Debug)]
pub struct Agent {
    pub record: AgentRecord,
    pub hash: String,
    pub boot_id: String,
    /// Uptime reported at the simulator's start; it grows from there.
    pub uptime_at_start: u64,
    pub client: reqwest::Client,
}

impl Agent {
    pub fn new(record: AgentRecord, endpoint: &Endpoint, rng: &mut Rng) -> anyhow::Result<Self> {
        let client = endpoint.client(Some(&record.identity_pem()))?;
        Ok(Agent {
            hash: synth::report_hash(record.index),
            boot_id: uuid::Uuid::new_v4().to_string(),
            uptime_at_start: 3_600 + rng.below(90 * 86_400),
            record,
            client,
        })
    }

    /// A check-in body with fresh metrics and the unchanged inventory hash.
    pub fn checkin_body(&self, rng: &mut Rng, started: Instant, wait_ms: u64) -> Vec<u8> {
        let uptime = self.uptime_at_start + started.elapsed().as_secs();
        let request = synth::checkin(rng, &self.boot_id, uptime, &self.hash, wait_ms);
        serde_json::to_vec(&request).expect("check-ins serialise")
    }
}

/// One HTTP exchange, timed from just before the request is handed to the client until the
/// whole answer body has been read.
#[derive(Debug)]
pub struct Exchange {
    pub status: StatusCode,
    pub version: Version,
    pub body: Vec<u8>,
    pub latency: Duration,
    pub request_body_bytes: usize,
    /// Header bytes as HTTP/1.1 would spell them (request line or status line, headers, blank
    /// line). HTTP/2 sends them HPACK-compressed, so this is an upper bound there.
    pub request_header_bytes: usize,
    pub response_header_bytes: usize,
    pub retry_after: Option<u64>,
}

/// `POST /agent/v1/checkin` with `body` on `client`, as `agent`.
pub async fn checkin(
    endpoint: &Endpoint,
    client: &reqwest::Client,
    agent: &Agent,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Exchange, reqwest::Error> {
    let request_body_bytes = body.len();
    let request = client
        .post(format!("{}/agent/v1/checkin", endpoint.base))
        .header(CONTENT_TYPE, "application/json")
        .header(MACHINE_ID_HEADER, &agent.record.machine_id)
        .timeout(timeout)
        .body(body)
        .build()?;
    let request_header_bytes = request_header_bytes(&request, &endpoint.authority, request_body_bytes);
    let start = Instant::now();
    let response = client.execute(request).await?;
    let status = response.status();
    let version = response.version();
    let response_header_bytes = response_header_bytes(status, response.headers());
    let retry_after = fleet::retry_after(response.headers());
    let body = response.bytes().await?;
    let latency = start.elapsed();
    Ok(Exchange {
        status,
        version,
        body: body.to_vec(),
        latency,
        request_body_bytes,
        request_header_bytes,
        response_header_bytes,
        retry_after,
    })
}

/// HTTP/1.1 size of the request head: request line, `host`, `content-length`, `accept` (reqwest
/// adds `*/*`), the request's own headers and the blank line.
pub fn request_header_bytes(request: &reqwest::Request, authority: &str, body_len: usize) -> usize {
    let mut n = request.method().as_str().len() + 1 + request.url().path().len() + " HTTP/1.1\r\n".len();
    n += "host: \r\n".len() + authority.len();
    n += "content-length: \r\n".len() + body_len.to_string().len();
    if !request.headers().contains_key(ACCEPT) {
        n += "accept: */*\r\n".len();
    }
    n + header_bytes(request.headers()) + 2
}

/// HTTP/1.1 size of the response head: status line, headers, blank line.
pub fn response_header_bytes(status: StatusCode, headers: &HeaderMap) -> usize {
    let reason = status.canonical_reason().unwrap_or("");
    "HTTP/1.1 200 \r\n".len() + reason.len() + header_bytes(headers) + 2
}

fn header_bytes(headers: &HeaderMap) -> usize {
    headers.iter().map(|(name, value)| name.as_str().len() + 2 + value.len() + 2).sum()
}

/// `PUT /agent/v1/inventory` with agent `agent`'s synthetic scan; returns the body size.
pub async fn put_inventory(endpoint: &Endpoint, agent: &Agent) -> anyhow::Result<usize> {
    let report = synth::scan_report(agent.record.index, Timestamp::now());
    let upload = InventoryUpload { protocol_version: PROTOCOL_VERSION, hash: agent.hash.clone(), report };
    let body = serde_json::to_vec(&upload)?;
    let len = body.len();
    let response = agent
        .client
        .put(format!("{}/agent/v1/inventory", endpoint.base))
        .header(CONTENT_TYPE, "application/json")
        .header(MACHINE_ID_HEADER, &agent.record.machine_id)
        .timeout(Duration::from_secs(60))
        .body(body)
        .send()
        .await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    if status != StatusCode::NO_CONTENT {
        bail!("inventory of {}: {status} {}", agent.record.hostname, fleet::error_code(&bytes));
    }
    Ok(len)
}

/// A short name for a transport failure, and its full text.
pub fn transport_error(e: &reqwest::Error) -> (&'static str, String) {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() {
        "body"
    } else if e.is_decode() {
        "decode"
    } else if e.is_request() {
        "request"
    } else {
        "other"
    };
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    (kind, text)
}

/// What the long-poll loops saw.
#[derive(Debug, Default)]
pub struct HoldCounters {
    /// Check-ins sent and not answered yet: the held connections.
    pub in_flight: AtomicUsize,
    pub answers: AtomicU64,
    pub inventory_wanted: AtomicU64,
    /// Answered with `next_checkin_ms > 0` (the manager would not hold more).
    pub told_to_wait: AtomicU64,
    pub with_commands: AtomicU64,
    pub unavailable: AtomicU64,
    pub inventory_uploads: AtomicU64,
}

struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a real agent does when idle: check in with `wait_ms` on its own connection, and check in
/// again as soon as the answer arrives (after uploading the inventory if asked, after
/// `next_checkin_ms` if told to wait). Failures back off exponentially with full jitter (1 s
/// doubling to 5 minutes), 503s wait `Retry-After`. Runs until aborted.
pub async fn hold_loop(
    endpoint: Arc<Endpoint>,
    agent: Arc<Agent>,
    counters: Arc<HoldCounters>,
    tally: Arc<Tally>,
    wait_ms: u64,
    started: Instant,
) {
    let mut rng = Rng::new(0x401d ^ agent.record.index as u64);
    let timeout = Duration::from_millis(wait_ms) + Duration::from_secs(60);
    let mut failures: u32 = 0;
    loop {
        let body = agent.checkin_body(&mut rng, started, wait_ms);
        let result = {
            let _held = InFlight::new(&counters.in_flight);
            checkin(&endpoint, &agent.client, &agent, body, timeout).await
        };
        let pause = match result {
            Ok(x) if x.status == StatusCode::OK => match serde_json::from_slice::<CheckinResponse>(&x.body) {
                Ok(answer) => {
                    failures = 0;
                    counters.answers.fetch_add(1, Ordering::Relaxed);
                    if !answer.commands.is_empty() {
                        counters.with_commands.fetch_add(1, Ordering::Relaxed);
                    }
                    if answer.inventory_wanted {
                        counters.inventory_wanted.fetch_add(1, Ordering::Relaxed);
                        match put_inventory(&endpoint, &agent).await {
                            Ok(_) => {
                                counters.inventory_uploads.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => tally.add("held:inventory upload", || format!("{e:#}")),
                        }
                    }
                    if answer.next_checkin_ms > 0 {
                        counters.told_to_wait.fetch_add(1, Ordering::Relaxed);
                    }
                    Duration::from_millis(answer.next_checkin_ms)
                }
                Err(e) => {
                    tally.add("held:not a CheckinResponse", || e.to_string());
                    failures += 1;
                    backoff(&mut rng, failures)
                }
            },
            Ok(x) if x.status == StatusCode::SERVICE_UNAVAILABLE => {
                counters.unavailable.fetch_add(1, Ordering::Relaxed);
                tally.add("held:status 503", || fleet::error_code(&x.body));
                Duration::from_secs(x.retry_after.unwrap_or(5))
            }
            Ok(x) => {
                failures += 1;
                tally.add(format!("held:status {}", x.status.as_u16()), || fleet::error_code(&x.body));
                backoff(&mut rng, failures)
            }
            Err(e) => {
                failures += 1;
                let (kind, text) = transport_error(&e);
                tally.add(format!("held:transport {kind}"), || text);
                backoff(&mut rng, failures)
            }
        };
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}

/// Full jitter: uniform in `[0, min(300 s, 1 s · 2^(failures-1)))`.
pub fn backoff(rng: &mut Rng, failures: u32) -> Duration {
    let cap_ms = 1000u64.saturating_mul(1 << failures.saturating_sub(1).min(20)).min(300_000);
    Duration::from_millis(rng.below(cap_ms.max(1)))
}

/// Runs `f` over `items` with at most `limit` at once, each on its own task; prints
/// `label: done/total` every 500 to stderr. Returns the outputs in completion order.
pub async fn bounded<T, F, Fut>(label: &str, items: Vec<T>, limit: usize, f: F) -> Vec<Fut::Output>
where
    F: Fn(T) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let total = items.len();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(limit.max(1)));
    let done = Arc::new(AtomicUsize::new(0));
    let mut set = tokio::task::JoinSet::new();
    for item in items {
        let permit = Arc::clone(&semaphore).acquire_owned().await.expect("the semaphore is never closed");
        let fut = f(item);
        let done = Arc::clone(&done);
        let label = label.to_owned();
        set.spawn(async move {
            let out = fut.await;
            drop(permit);
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_multiple_of(500) || n == total {
                eprintln!("  {label}: {n}/{total}");
            }
            out
        });
    }
    let mut outputs = Vec::with_capacity(total);
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(out) => outputs.push(out),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    outputs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_five_minute_cap() {
        let mut rng = Rng::new(9);
        for failures in 1..40 {
            let cap = Duration::from_millis((1000u64 << (failures - 1).min(20)).min(300_000));
            for _ in 0..50 {
                assert!(backoff(&mut rng, failures) < cap, "failures {failures}");
            }
        }
        let late: Vec<Duration> = (0..200).map(|_| backoff(&mut rng, 30)).collect();
        assert!(late.iter().any(|d| *d > Duration::from_secs(150)), "the cap is reached");
    }

    #[test]
    fn header_sizes_are_counted_as_http1_would_send_them() {
        let client = reqwest::Client::new();
        let request = client
            .post("https://localhost:8443/agent/v1/checkin")
            .header(CONTENT_TYPE, "application/json")
            .header(MACHINE_ID_HEADER, "0123456789abcdef0123456789abcdef")
            .body(vec![b'x'; 600])
            .build()
            .unwrap();
        let expected = "POST /agent/v1/checkin HTTP/1.1\r\n\
                        host: localhost:8443\r\n\
                        content-length: 600\r\n\
                        accept: */*\r\n\
                        content-type: application/json\r\n\
                        patchdeck-machine-id: 0123456789abcdef0123456789abcdef\r\n\r\n";
        assert_eq!(request_header_bytes(&request, "localhost:8443", 600), expected.len());

        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
        headers.insert("content-length", "110".parse().unwrap());
        let expected = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 110\r\n\r\n";
        assert_eq!(response_header_bytes(StatusCode::OK, &headers), expected.len());
    }
}
