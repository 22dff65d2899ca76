//! Heap allocations per request, counted by a global allocator that wraps the system one.
//!
//! ```text
//! cargo bench --bench allocs
//! ```
//!
//! For each scenario: allocations (`alloc` + `realloc` calls) and bytes allocated per request,
//! averaged over 1,000 requests after 100 warm-up requests, on a current-thread runtime. The
//! figures are exact counts, not timings, so they are stable on a loaded machine.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use common::{
    fixed, fixed_stream, fixed_with_headers, mock_stream_frames, once, stack_body, stack_catalog,
    stack_stream_body,
};
use tower::ServiceBuilder;
use tower_ai_gateway::usage_meter::GenerationStore;
use tower_ai_gateway::GatewayLayer;

/// The system allocator, counting.
struct Counting;

static CALLS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to `System`; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc` is passed on as is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const WARM_UP: usize = 100;
const N: usize = 1000;

/// Allocations and bytes per request of `svc`.
fn measure<S, B>(rt: &tokio::runtime::Runtime, mut svc: S, body: &Bytes) -> (f64, f64)
where
    S: tower::Service<http::Request<http_body_util::Full<Bytes>>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    for _ in 0..WARM_UP {
        rt.block_on(once(&mut svc, body));
    }
    let (calls, bytes) = (CALLS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
    for _ in 0..N {
        rt.block_on(once(&mut svc, body));
    }
    let calls = CALLS.load(Ordering::Relaxed) - calls;
    let bytes = BYTES.load(Ordering::Relaxed) - bytes;
    (calls as f64 / N as f64, bytes as f64 / N as f64)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let body = stack_body();
    let gateway = || {
        ServiceBuilder::new().layer(
            GatewayLayer::new(stack_catalog())
                .routing(|r| r.seed(1))
                .usage_meter(|u| u.sink(GenerationStore::new(1024))),
        )
    };
    let bare = measure(&rt, tower::service_fn(fixed), &body);
    let all = measure(&rt, gateway().service_fn(fixed), &body);
    // The upstream answers with a provider's usual headers (what a real gateway sees: an HTTP
    // client's answer always has some).
    let bare_h = measure(&rt, tower::service_fn(fixed_with_headers), &body);
    let all_h = measure(&rt, gateway().service_fn(fixed_with_headers), &body);
    // A streamed request answered with the example mock upstream's 22 frames, drained.
    let stream_body = stack_stream_body();
    let bare_s = measure(&rt, fixed_stream(mock_stream_frames()), &stream_body);
    let all_s = measure(
        &rt,
        gateway().service(fixed_stream(mock_stream_frames())),
        &stream_body,
    );
    println!("scenario (1 KB non-streamed request)        allocations/request   bytes/request");
    let row = |name: &str, (calls, bytes): (f64, f64)| {
        println!("{name:<44}{calls:>19.1} {bytes:>15.0}");
    };
    row("stack/bare", bare);
    row("stack/all (GatewayLayer)", all);
    row("added by the gateway", (all.0 - bare.0, all.1 - bare.1));
    row("stack/bare+headers", bare_h);
    row("stack/all+headers (GatewayLayer)", all_h);
    row(
        "added by the gateway (answer with headers)",
        (all_h.0 - bare_h.0, all_h.1 - bare_h.1),
    );
    row("stack/bare+stream (22 frames)", bare_s);
    row("stack/all+stream (GatewayLayer)", all_s);
    row(
        "added by the gateway (per stream)",
        (all_s.0 - bare_s.0, all_s.1 - bare_s.1),
    );
}
