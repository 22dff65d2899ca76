//! Scenarios: requests at fixed rates, closed loops, and the gateway's CPU and memory from `/proc`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Command-line options.
pub struct Args {
    /// The gateway's chat-completions URL (`--gateway`).
    pub gateway: Option<http::Uri>,
    /// The mock upstream's chat-completions URL (`--upstream`).
    pub upstream: Option<http::Uri>,
    /// What is measured, as the table names it (`--name`; default `gateway`, `bare proxy` for
    /// examples/bare_proxy.rs).
    pub name: String,
    /// The gateway's process id, for CPU time and memory (`--gateway-pid`).
    pub pid: Option<u32>,
    /// Length of each scenario (`--duration`, seconds).
    pub duration: Duration,
    /// Length of each memory run (`--rss-duration`, seconds).
    pub rss_duration: Duration,
    /// How many memory runs (`--rss-runs`; 0 for none).
    pub rss_runs: usize,
    /// Fixed rates for non-streamed requests, per second (`--rates`).
    pub rates: Vec<u32>,
    /// Connections for the maximum-throughput scenario (`--connections`).
    pub connections: usize,
    /// The model every request names (`--model`).
    pub model: String,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// One finished request: time to the first body frame and to the end of the body, from the send.
#[derive(Clone, Copy)]
pub struct Timing {
    /// Time to the first non-empty body frame.
    pub ttfb: Duration,
    /// Time to the end of the body.
    pub total: Duration,
}

/// The outcome of one scenario against one target.
#[derive(Default)]
pub struct Sample {
    /// Every request that succeeded.
    pub timings: Vec<Timing>,
    /// Requests that failed (transport error or a non-2xx status).
    pub errors: u64,
    /// Wall-clock time of the scenario.
    pub elapsed: Duration,
    /// The gateway's CPU time (user + system) over the scenario, when its pid is known.
    pub gateway_cpu: Option<Duration>,
    /// How long the gateway's threads were runnable but waiting for a CPU over the scenario
    /// (`/proc/PID/task/*/schedstat`): near zero on a quiet machine.
    pub gateway_wait: Option<Duration>,
}

impl Sample {
    /// Finished requests per second.
    pub fn rate(&self) -> f64 {
        self.timings.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..=1) of the times `pick` selects, in milliseconds.
    pub fn quantile_ms(&self, q: f64, pick: fn(&Timing) -> Duration) -> f64 {
        let mut v: Vec<Duration> = self.timings.iter().map(pick).collect();
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_unstable();
        let i = ((v.len() - 1) as f64 * q).round() as usize;
        v[i].as_secs_f64() * 1e3
    }

    /// The gateway's CPU time per finished request, in microseconds.
    pub fn cpu_per_request_us(&self) -> Option<f64> {
        let n = self.timings.len().max(1) as f64;
        self.gateway_cpu.map(|c| c.as_secs_f64() * 1e6 / n)
    }

    fn absorb(&mut self, other: Sample) {
        self.timings.extend(other.timings);
        self.errors += other.errors;
    }
}

/// Everything one run measured.
#[derive(Default)]
pub struct Results {
    /// Per rate: (direct, gateway).
    pub fixed: Vec<(u32, Sample, Sample)>,
    /// Non-streamed, closed loop on `--connections` connections: (direct, gateway).
    pub max: (Sample, Sample),
    /// Streams one at a time: (direct, gateway).
    pub streams_1: (Sample, Sample),
    /// Streams ten at a time: (direct, gateway).
    pub streams_10: (Sample, Sample),
    /// The gateway's (VmRSS, VmHWM) in KiB and open file descriptors after each of the memory
    /// runs at 1,000 req/s.
    pub rss_runs: Vec<(u64, u64, usize)>,
    /// The gateway's VmHWM in KiB at the end.
    pub peak_kib: Option<u64>,
}

/// A ~1 KB chat-completions request body for `model`, streamed or not.
pub fn request_body(model: &str, stream: bool) -> Bytes {
    const TARGET: usize = 1024;
    let head = format!(
        r#"{{"model":"{model}",{}"max_tokens":64,"messages":[{{"role":"system","content":"You are terse."}},{{"role":"user","content":""#,
        if stream { r#""stream":true,"# } else { "" }
    );
    let tail = r#""}]}"#;
    let filler = "Tell me about the history of the printing press, please. ";
    let mut content = String::new();
    while head.len() + content.len() + tail.len() < TARGET {
        content.push_str(filler);
    }
    content.truncate(TARGET.saturating_sub(head.len() + tail.len()));
    Bytes::from(format!("{head}{content}{tail}"))
}

fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Sends one request and reads the whole body.
async fn one(client: &HttpClient, uri: &http::Uri, body: &Bytes) -> Result<Timing, String> {
    let req = http::Request::post(uri.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body.clone()))
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let res = client.request(req).await.map_err(|e| e.to_string())?;
    let status = res.status();
    let mut body = res.into_body();
    let mut ttfb = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if ttfb.is_none() && frame.data_ref().is_some_and(|d| !d.is_empty()) {
            ttfb = Some(start.elapsed());
        }
    }
    let total = start.elapsed();
    if !status.is_success() {
        return Err(format!("status {status}"));
    }
    Ok(Timing {
        ttfb: ttfb.unwrap_or(total),
        total,
    })
}

/// `workers` loops each sending one request after the other until `duration` has passed.
async fn closed_loop(uri: &http::Uri, body: &Bytes, workers: usize, duration: Duration) -> Sample {
    let client = client();
    let start = Instant::now();
    let deadline = start + duration;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (client, uri, body) = (client.clone(), uri.clone(), body.clone());
        set.spawn(async move {
            let mut s = Sample::default();
            while Instant::now() < deadline {
                match one(&client, &uri, &body).await {
                    Ok(t) => s.timings.push(t),
                    Err(_) => s.errors += 1,
                }
            }
            s
        });
    }
    let mut all = Sample::default();
    while let Some(s) = set.join_next().await {
        all.absorb(s.unwrap_or_default());
    }
    all.elapsed = start.elapsed();
    all
}

/// Open loop: a request every 1/`rate` s (tokio's timer ticks each millisecond, so rates above
/// 1,000/s go out in small bursts), each timed from its own send.
async fn fixed_rate(uri: &http::Uri, body: &Bytes, rate: u32, duration: Duration) -> Sample {
    let client = client();
    let total = (rate as f64 * duration.as_secs_f64()).round() as u64;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..total {
        tick.tick().await;
        let (client, uri, body) = (client.clone(), uri.clone(), body.clone());
        set.spawn(async move { one(&client, &uri, &body).await });
    }
    let mut s = Sample::default();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(t)) => s.timings.push(t),
            _ => s.errors += 1,
        }
    }
    s.elapsed = start.elapsed();
    s
}

/// The process's user + system CPU time, from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3, the state.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

/// `getconf CLK_TCK` (100 on Linux unless the kernel says otherwise).
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// A `kB` line of `/proc/PID/status` (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Runs `f` after a short warm-up with the same concurrency, recording the gateway's CPU time.
async fn measured<F, Fut>(pid: Option<u32>, warm: (&http::Uri, &Bytes, usize), f: F) -> Sample
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Sample>,
{
    closed_loop(warm.0, warm.1, warm.2, Duration::from_millis(300)).await;
    let before = pid.and_then(cpu_time);
    let wait_before = pid.and_then(run_queue_wait);
    let mut s = f().await;
    let after = pid.and_then(cpu_time);
    s.gateway_cpu = before.zip(after).map(|(b, a)| a.saturating_sub(b));
    let wait_after = pid.and_then(run_queue_wait);
    s.gateway_wait = wait_before
        .zip(wait_after)
        .map(|(b, a)| a.saturating_sub(b));
    s
}

/// The time all of the process's threads have spent runnable but not running, from the second
/// field of `/proc/PID/task/TID/schedstat` (nanoseconds; needs schedstats in the kernel).
fn run_queue_wait(pid: u32) -> Option<Duration> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        let stat = std::fs::read_to_string(path).ok()?;
        ns += stat.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(ns))
}

/// Every scenario, direct and through the gateway, in the order the report lists them.
pub async fn run_all(args: &Args) -> Results {
    let gw = args
        .gateway
        .clone()
        .expect("checked by the argument parser");
    let up = args
        .upstream
        .clone()
        .expect("checked by the argument parser");
    let plain = request_body(&args.model, false);
    let streamed = request_body(&args.model, true);
    let mut r = Results::default();
    if let Some(pid) = args.pid {
        for run in 1..=args.rss_runs {
            eprintln!(
                "memory run {run}: gateway at 1000 req/s for {:?}",
                args.rss_duration
            );
            let s = fixed_rate(&gw, &plain, 1000, args.rss_duration).await;
            let kib = |k| status_kib(pid, k).unwrap_or(0);
            let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
            r.rss_runs.push((kib("VmRSS"), kib("VmHWM"), fds));
            eprintln!(
                "  VmRSS {} KiB, VmHWM {} KiB, {fds} open fds; latency max {:.1} ms, {} failed",
                kib("VmRSS"),
                kib("VmHWM"),
                s.quantile_ms(1.0, |t| t.total),
                s.errors
            );
        }
    }
    let (pid, d, conns) = (args.pid, args.duration, args.connections);
    for &rate in &args.rates {
        eprintln!("non-streamed at {rate} req/s for {d:?}, direct and through the gateway");
        let direct = measured(None, (&up, &plain, 1), || fixed_rate(&up, &plain, rate, d)).await;
        let via = measured(pid, (&gw, &plain, 1), || fixed_rate(&gw, &plain, rate, d)).await;
        r.fixed.push((rate, direct, via));
    }
    eprintln!("non-streamed, closed loop on {conns} connections for {d:?}");
    let direct = measured(None, (&up, &plain, conns), || {
        closed_loop(&up, &plain, conns, d)
    })
    .await;
    let via = measured(pid, (&gw, &plain, conns), || {
        closed_loop(&gw, &plain, conns, d)
    })
    .await;
    r.max = (direct, via);
    for n in [1, 10] {
        eprintln!("streams, {n} at a time for {d:?}");
        let direct = measured(None, (&up, &streamed, n), || {
            closed_loop(&up, &streamed, n, d)
        });
        let direct = direct.await;
        let via = measured(pid, (&gw, &streamed, n), || {
            closed_loop(&gw, &streamed, n, d)
        })
        .await;
        if n == 1 {
            r.streams_1 = (direct, via);
        } else {
            r.streams_10 = (direct, via);
        }
    }
    r.peak_kib = pid.and_then(|p| status_kib(p, "VmHWM"));
    r
}
