//! The markdown table.

use std::fmt::Write;
use std::time::Duration;

use crate::run::{Args, Results, Sample, Timing};

fn ttfb(t: &Timing) -> Duration {
    t.ttfb
}

fn total(t: &Timing) -> Duration {
    t.total
}

/// `a / b` with three decimals.
fn pair(a: f64, b: f64) -> String {
    format!("{a:.3} / {b:.3}")
}

/// `+a / +b` with three decimals.
fn added_pair(a: f64, b: f64) -> String {
    format!("{a:+.3} / {b:+.3}")
}

fn us(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.1} µs"))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 / 1024.0)
}

/// One row: label, direct, gateway, added.
fn row(out: &mut String, label: &str, direct: &str, via: &str, added: &str) {
    let _ = writeln!(out, "| {label} | {direct} | {via} | {added} |");
}

/// p50 of time to first byte and to the end of the body, and streams/s, for one concurrency.
fn stream_rows(out: &mut String, n: usize, (d, g): &(Sample, Sample)) {
    let at = if n == 1 {
        "one SSE stream at a time".to_string()
    } else {
        format!("{n} SSE streams at a time")
    };
    for (what, pick) in [
        ("time to first byte (p50)", ttfb as fn(&Timing) -> Duration),
        ("time to the **end** of the stream (p50)", total),
    ] {
        let (a, b) = (d.quantile_ms(0.5, pick), g.quantile_ms(0.5, pick));
        let label = format!("{at}, {what}");
        row(
            out,
            &label,
            &format!("{a:.3} ms"),
            &format!("{b:.3} ms"),
            &format!("{:+.3} ms", b - a),
        );
    }
    let label = format!("{at}, streams/s");
    row(
        out,
        &label,
        &format!("{:.0}", d.rate()),
        &format!("{:.0}", g.rate()),
        "",
    );
}

fn fixed_rows(out: &mut String, fixed: &[(u32, Sample, Sample)]) {
    for (rate, d, g) in fixed {
        let (d50, d99) = (d.quantile_ms(0.5, total), d.quantile_ms(0.99, total));
        let (g50, g99) = (g.quantile_ms(0.5, total), g.quantile_ms(0.99, total));
        row(
            out,
            &format!("non-streaming, p50 / p99 at {rate} req/s"),
            &format!("{} ms", pair(d50, d99)),
            &format!("{} ms", pair(g50, g99)),
            &format!("{} ms", added_pair(g50 - d50, g99 - d99)),
        );
    }
}

fn cpu_rows(out: &mut String, r: &Results) {
    let max = r.max.1.cpu_per_request_us();
    row(
        out,
        "gateway CPU per non-streamed request at max throughput",
        "",
        &us(max),
        "",
    );
    for (rate, _, g) in &r.fixed {
        let label = format!("gateway CPU per non-streamed request at {rate} req/s");
        row(out, &label, "", &us(g.cpu_per_request_us()), "");
    }
    let (one, ten) = (
        r.streams_1.1.cpu_per_request_us(),
        r.streams_10.1.cpu_per_request_us(),
    );
    let label = "gateway CPU per 22-frame stream (1 / 10 at a time)";
    row(out, label, "", &format!("{} / {}", us(one), us(ten)), "");
}

fn memory_rows(out: &mut String, args: &Args, r: &Results) {
    let secs = args.rss_duration.as_secs_f64();
    if let [(rss1, hwm1), (rss2, hwm2)] = r.rss_runs[..] {
        let label = format!(
            "gateway peak RSS after {secs:.0} s at 1,000 req/s, then after another {secs:.0} s"
        );
        row(
            out,
            &label,
            "",
            &format!("{} → {}", mib(hwm1), mib(hwm2)),
            "",
        );
        let label = "gateway RSS at the end of each of those runs";
        row(
            out,
            label,
            "",
            &format!("{} → {}", mib(rss1), mib(rss2)),
            "",
        );
    }
    if let Some(peak) = r.peak_kib {
        let label = "gateway peak RSS at the end (after max throughput and streams)";
        row(out, label, "", &mib(peak), "");
    }
}

/// The whole report: the table, then error counts if any.
pub fn report(args: &Args, r: &Results) -> String {
    let mut out = String::new();
    out.push_str("| | mock upstream alone | through the gateway | added |\n|---|---|---|---|\n");
    stream_rows(&mut out, 1, &r.streams_1);
    stream_rows(&mut out, 10, &r.streams_10);
    fixed_rows(&mut out, &r.fixed);
    let label = format!(
        "non-streaming, max throughput ({} connections)",
        args.connections
    );
    let (d, g) = (&r.max.0, &r.max.1);
    row(
        &mut out,
        &label,
        &format!("{:.0} req/s", d.rate()),
        &format!("{:.0} req/s", g.rate()),
        "",
    );
    cpu_rows(&mut out, r);
    memory_rows(&mut out, args, r);
    let errors: u64 = [&r.max, &r.streams_1, &r.streams_10]
        .into_iter()
        .flat_map(|(d, g)| [d.errors, g.errors])
        .chain(r.fixed.iter().flat_map(|(_, d, g)| [d.errors, g.errors]))
        .sum();
    let _ = writeln!(out, "\nFailed requests: {errors}.");
    out
}
