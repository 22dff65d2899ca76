//! The load generator of the proxy benchmark (`scripts/proxy-bench.sh`, which starts everything).
//!
//! ```text
//! proxy_load --gateway URL --upstream URL [--name NAME] [--gateway-pid PID] [--duration SECS]
//!            [--rss-duration SECS] [--rss-runs N] [--rates 1000,5000] [--connections 50] [--model ID]
//! ```
//!
//! Runs every scenario against the mock upstream called directly and through the gateway, in the
//! same run, over hyper-util's pooled client (keep-alive, `TCP_NODELAY`) with ~1 KB chat requests,
//! on one thread: non-streamed requests at fixed rates (latency from send to the end of the body)
//! and at maximum throughput (closed loop on `--connections` connections); streamed requests one at
//! a time and 10 at a time (time to the first body frame and to the end of the body, streams/s).
//! With `--gateway-pid` it reads the gateway's CPU time (`/proc/PID/stat`) around each scenario and
//! its resident memory (`/proc/PID/status`): first `--rss-runs` runs at 1,000 req/s of
//! `--rss-duration` each, to show the peak and whether it grows. Prints a markdown table on stdout
//! and the distribution of every sample on stderr.

// The mock upstream's stream, for its length (`MOCK_CHUNKS`).
#[path = "../shared/mock_stream.rs"]
#[allow(dead_code)]
mod mock_stream;
mod report;
mod run;

use std::time::Duration;

use report::report;
use run::{run_all, Args};

fn usage() -> ! {
    eprintln!(
        "usage: proxy_load --gateway URL --upstream URL [--name NAME] [--gateway-pid PID] [--duration SECS]\n\
         \x20                 [--rss-duration SECS] [--rss-runs N] [--rates R1,R2] [--connections N] [--model ID]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        gateway: None,
        upstream: None,
        name: "gateway".into(),
        pid: None,
        duration: Duration::from_secs(10),
        rss_duration: Duration::from_secs(30),
        rss_runs: 2,
        rates: vec![1000],
        connections: 50,
        model: "bench/mock-model".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        let secs = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|s| *s > 0.0 && s.is_finite())
                .map(Duration::from_secs_f64)
                .unwrap_or_else(|| usage())
        };
        match arg.as_str() {
            "--gateway" => a.gateway = Some(value.parse().unwrap_or_else(|_| usage())),
            "--upstream" => a.upstream = Some(value.parse().unwrap_or_else(|_| usage())),
            "--name" => a.name = value,
            "--gateway-pid" => a.pid = Some(value.parse().unwrap_or_else(|_| usage())),
            "--duration" => a.duration = secs(&value),
            "--rss-duration" => a.rss_duration = secs(&value),
            "--rss-runs" => a.rss_runs = value.parse().unwrap_or_else(|_| usage()),
            "--rates" => {
                a.rates = value
                    .split(',')
                    .map(|r| r.trim().parse().ok().filter(|r| *r > 0))
                    .collect::<Option<Vec<u32>>>()
                    .unwrap_or_else(|| usage())
            }
            "--connections" => {
                a.connections = value
                    .parse()
                    .ok()
                    .filter(|c| *c > 0)
                    .unwrap_or_else(|| usage())
            }
            "--model" => a.model = value,
            _ => usage(),
        }
    }
    if a.gateway.is_none() || a.upstream.is_none() {
        usage()
    }
    a
}

fn main() {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let results = rt.block_on(run_all(&args));
    eprint!("{}", report::details(&results));
    print!("{}", report(&args, &results));
}
