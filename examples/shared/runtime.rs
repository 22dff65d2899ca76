//! The tokio runtime of the example servers (the gateway and the bare proxy): `threads` workers,
//! by default the cores the process may run on (`std::thread::available_parallelism`, which counts
//! what `taskset` or a cgroup CPU quota leaves it).
//!
//! On one core the runtime is tokio's `current_thread`: the accept loop, every connection and
//! every upstream call share one thread, with none of the multi-threaded scheduler's
//! synchronisation, and no second thread contending for the core (the multi-threaded runtime runs
//! `main`'s accept loop on the main thread beside its one worker). Over loopback on one core,
//! `scripts/gateway-icount.sh` counts 3.6k instructions fewer per request this way, on the gateway
//! and on the bare proxy alike, and `scripts/proxy-bench.sh` measures 9–13 % more requests per
//! second (the README's "The fourteenth stop").

/// Builds the runtime for `threads` workers (`None`: the cores the process may run on).
pub fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}
