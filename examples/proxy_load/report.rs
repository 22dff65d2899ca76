//! The markdown table.

use std::fmt::Write;
use std::time::Duration;

use crate::run::{Args, Results, Sample, Timing};

/// Which time of a [`Timing`] a row reports.
type Pick = fn(&Timing) -> Duration;

fn ttfb(t: &Timing) -> Duration {
    t.ttfb
}

fn total(t: &Timing) -> Duration {
    t.total
}

fn us(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.1} µs"))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 / 1024.0)
}

/// The table being written: one row per measurement.
struct Table(String);

impl Table {
    /// One row: what, the mock alone, through the gateway, the difference, issue 13's goal.
    fn row(&mut self, label: &str, direct: &str, via: &str, added: &str, goal: &str) {
        let _ = writeln!(self.0, "| {label} | {direct} | {via} | {added} | {goal} |");
    }

    /// A row for the gateway alone.
    fn gateway(&mut self, label: &str, via: &str, goal: &str) {
        self.row(label, "", via, "", goal);
    }
}

/// p50 of time to first byte and to the end of the body, and streams/s, for one concurrency.
fn stream_rows(t: &mut Table, n: usize, (d, g): &(Sample, Sample)) {
    let (at, goals) = if n == 1 {
        (
            "one SSE stream at a time".to_string(),
            ["≤ +0.15 ms", "≤ +0.3 ms"],
        )
    } else {
        (format!("{n} SSE streams at a time"), ["", ""])
    };
    let picks: [(&str, Pick); 2] = [
        ("time to first byte (p50)", ttfb),
        ("time to the **end** of the stream (p50)", total),
    ];
    for ((what, pick), goal) in picks.into_iter().zip(goals) {
        let (a, b) = (d.quantile_ms(0.5, pick), g.quantile_ms(0.5, pick));
        let (a_s, b_s, diff) = (
            format!("{a:.3} ms"),
            format!("{b:.3} ms"),
            format!("{:+.3} ms", b - a),
        );
        t.row(&format!("{at}, {what}"), &a_s, &b_s, &diff, goal);
    }
    let (a, b) = (format!("{:.0}", d.rate()), format!("{:.0}", g.rate()));
    t.row(&format!("{at}, streams/s"), &a, &b, "", "");
}

fn fixed_rows(t: &mut Table, fixed: &[(u32, Sample, Sample)]) {
    for (rate, d, g) in fixed {
        let (d50, d99) = (d.quantile_ms(0.5, total), d.quantile_ms(0.99, total));
        let (g50, g99) = (g.quantile_ms(0.5, total), g.quantile_ms(0.99, total));
        let goal = if *rate == 1000 {
            "≤ +0.05 / ≤ +0.2 ms"
        } else {
            ""
        };
        t.row(
            &format!("non-streaming, p50 / p99 at {rate} req/s"),
            &format!("{d50:.3} / {d99:.3} ms"),
            &format!("{g50:.3} / {g99:.3} ms"),
            &format!("{:+.3} / {:+.3} ms", g50 - d50, g99 - d99),
            goal,
        );
    }
}

fn cpu_rows(t: &mut Table, r: &Results) {
    let max = us(r.max.1.cpu_per_request_us());
    t.gateway(
        "gateway CPU per non-streamed request at max throughput",
        &max,
        "≤ 25 µs",
    );
    for (rate, _, g) in &r.fixed {
        let label = format!("gateway CPU per non-streamed request at {rate} req/s");
        t.gateway(&label, &us(g.cpu_per_request_us()), "");
    }
    let one = us(r.streams_1.1.cpu_per_request_us());
    let ten = us(r.streams_10.1.cpu_per_request_us());
    // The mock's content chunks, then the usage chunk and `[DONE]` (a bad `MOCK_CHUNKS` stopped
    // the mock, and the script with it, before this runs).
    let chunks = crate::mock_stream::configured_chunks().unwrap_or(crate::mock_stream::CHUNKS);
    let frames = chunks + 2;
    let label = format!("gateway CPU per {frames}-frame stream (1 / 10 at a time)");
    let goal = if frames == 22 { "≤ 60 µs" } else { "" };
    t.gateway(&label, &format!("{one} / {ten}"), goal);
    let samples = r.fixed.iter().map(|(_, _, g)| g);
    let samples = samples.chain([&r.max.1, &r.streams_1.1, &r.streams_10.1]);
    let (cpu, wait) = samples.fold((0.0, None), |(cpu, wait), s| {
        let c = s.gateway_cpu.map_or(0.0, |c| c.as_secs_f64());
        let w = s
            .gateway_wait
            .map(|w| w.as_secs_f64() + wait.unwrap_or(0.0));
        (cpu + c, w.or(wait))
    });
    if let Some(wait) = wait {
        // Time the gateway was ready to run but another process had its core: ≈ 0 when quiet.
        let label = "gateway waiting for its core / running, over the scenarios above";
        t.gateway(label, &format!("{wait:.2} s / {cpu:.2} s"), "≈ 0 / –");
    }
}

fn memory_rows(t: &mut Table, args: &Args, r: &Results) {
    let secs = args.rss_duration.as_secs_f64();
    let runs = |f: fn(&(u64, u64, usize)) -> String| {
        r.rss_runs.iter().map(f).collect::<Vec<_>>().join(" → ")
    };
    if !r.rss_runs.is_empty() {
        let n = r.rss_runs.len();
        let label =
            format!("gateway peak RSS after each of {n} runs of {secs:.0} s at 1,000 req/s");
        t.gateway(&label, &runs(|(_, h, _)| mib(*h)), "≤ 30 MB, no growth");
        let label = "gateway RSS at the end of each of those runs";
        t.gateway(label, &runs(|(rss, _, _)| mib(*rss)), "");
        // Connections (callers' and the upstream pool's) hold buffers: more fds, more memory.
        t.gateway(
            "gateway open file descriptors then",
            &runs(|(_, _, f)| f.to_string()),
            "",
        );
    }
    if let Some(peak) = r.peak_kib {
        let label = "gateway peak RSS at the end (after max throughput and streams)";
        t.gateway(label, &mib(peak), "");
    }
}

/// The whole report: the table, then the count of failed requests.
pub fn report(args: &Args, r: &Results) -> String {
    let mut t = Table(String::new());
    t.row(
        "",
        "mock upstream alone",
        "through the gateway",
        "added",
        "goal (issue 13)",
    );
    t.row("---", "---", "---", "---", "---");
    stream_rows(&mut t, 1, &r.streams_1);
    stream_rows(&mut t, 10, &r.streams_10);
    fixed_rows(&mut t, &r.fixed);
    let label = format!(
        "non-streaming, max throughput ({} connections)",
        args.connections
    );
    let (d, g) = (
        format!("{:.0} req/s", r.max.0.rate()),
        format!("{:.0} req/s", r.max.1.rate()),
    );
    t.row(&label, &d, &g, "", "≥ 40,000 req/s");
    cpu_rows(&mut t, r);
    memory_rows(&mut t, args, r);
    let errors: u64 = [&r.max, &r.streams_1, &r.streams_10]
        .into_iter()
        .flat_map(|(d, g)| [d.errors, g.errors])
        .chain(r.fixed.iter().flat_map(|(_, d, g)| [d.errors, g.errors]))
        .sum();
    let _ = writeln!(t.0, "\nFailed requests: {errors}.");
    // Rows and columns name the gateway; another proxy measured in its place is named instead.
    t.0.replace("gateway", &args.name)
}

/// n, mean, p50, p90, p99 and max of one sample's times, in milliseconds.
fn spread(name: &str, s: &Sample, pick: Pick) -> String {
    let n = s.timings.len().max(1) as f64;
    let mean = s.timings.iter().map(|t| pick(t).as_secs_f64()).sum::<f64>() * 1e3 / n;
    let q = |q| s.quantile_ms(q, pick);
    format!(
        "{name:<34} n={:<7} mean={mean:.3} p50={:.3} p90={:.3} p99={:.3} max={:.3} ms\n",
        s.timings.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0)
    )
}

/// Every sample's distribution, for stderr.
pub fn details(r: &Results) -> String {
    let mut out = String::new();
    for (rate, d, g) in &r.fixed {
        out += &spread(&format!("{rate} req/s direct"), d, total);
        out += &spread(&format!("{rate} req/s gateway"), g, total);
    }
    out += &spread("max throughput direct", &r.max.0, total);
    out += &spread("max throughput gateway", &r.max.1, total);
    for (n, (d, g)) in [(1, &r.streams_1), (10, &r.streams_10)] {
        out += &spread(&format!("{n} streams direct, first byte"), d, ttfb);
        out += &spread(&format!("{n} streams direct, end"), d, total);
        out += &spread(&format!("{n} streams gateway, first byte"), g, ttfb);
        out += &spread(&format!("{n} streams gateway, end"), g, total);
    }
    out
}
