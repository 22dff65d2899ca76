//! Every fuzz target over its seed corpus and over seeded mutations of it: a short, deterministic
//! run for CI (the long, coverage-guided runs use AFL++; see the crate docs).

use std::path::Path;

/// Bytes that matter to JSON and SSE, for insertions.
const ALPHABET: &[u8] = b"{}[]\",:\\\n 0-9aeflnrstu";

/// Mutations per seed input.
const MUTATIONS: usize = 300;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of `input`: flipped, inserted, deleted or duplicated bytes, or a truncation.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if at < out.len() => out[at] ^= 1 << rng.below(8),
            1 => out.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
            2 if at < out.len() => {
                out.remove(at);
            }
            3 => out.truncate(at),
            4 if !out.is_empty() => {
                let from = rng.below(out.len());
                let len = rng.below(32).min(out.len() - from);
                let piece = out[from..from + len].to_vec();
                out.splice(at..at, piece);
            }
            _ => out.insert(at, rng.next() as u8),
        }
    }
    out
}

fn run(target: &str, f: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read(e.expect("entry").path()).expect("read"))
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds for {target}");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ target.len() as u64);
    f(&[]);
    for seed in &seeds {
        f(seed);
        for _ in 0..MUTATIONS {
            f(&mutate(&mut rng, seed));
        }
    }
}

#[test]
fn request_view() {
    run("request_view", tower_ai_gateway_fuzz::request_view);
}

#[test]
fn sse_streams() {
    run("sse_streams", tower_ai_gateway_fuzz::sse_streams);
}

#[test]
fn wire_json() {
    run("wire_json", tower_ai_gateway_fuzz::wire_json);
}

#[test]
fn wire_sse() {
    run("wire_sse", tower_ai_gateway_fuzz::wire_sse);
}

#[test]
fn catalog() {
    run("catalog", tower_ai_gateway_fuzz::catalog);
}
