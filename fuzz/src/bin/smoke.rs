//! A bounded, libFuzzer-less run of every fuzz target: the committed seed
//! corpus, then random mutations of it (bit flips, byte insertions and
//! deletions, splices of two seeds, interesting bytes) and plain random
//! bytes, for a number of seconds per target. Runs on any toolchain; it
//! finds less than coverage-guided libFuzzer but catches the same panics.
//!
//! `cargo run --release --no-default-features --bin smoke -- [--seconds N] [TARGET...]`
//!
//! A panicking input is written to `artifacts/<target>/crash-<hash>` and the
//! run exits non-zero.

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use switchboard_fuzz::TARGETS;

/// xorshift64*: a fast, dependency-free generator (not for secrets).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that tend to matter to these decoders.
const INTERESTING: &[&[u8]] = &[
    b"[",
    b"]",
    b"{",
    b"}",
    b"\"",
    b"\\",
    b":",
    b",",
    b"\x1e",
    b"b",
    b"%",
    b"&",
    b"=",
    b".",
    b"/",
    b"-",
    b"\\u0000",
    b"\\ud800",
    b"\xff",
    b"\xc3",
    b"\xe2\x80\xa8",
    b"null",
    b"true",
    b"1e999",
    b"18446744073709551616",
    b"\"type\":\"publish\"",
    b"\"room\":",
    b"\"cid\":",
    b"\"data\":",
    b"callback=",
    b"sid=",
    b"last=",
    b"eyJ",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    if seeds.is_empty() || rng.below(10) == 0 {
        let len = rng.below(256);
        return (0..len).map(|_| rng.next() as u8).collect();
    }
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(8) {
        match rng.below(6) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(data.len() + 1);
                data.insert(i, rng.next() as u8);
            }
            2 if !data.is_empty() => {
                let i = rng.below(data.len());
                let n = rng.below(data.len() - i + 1);
                data.drain(i..i + n);
            }
            3 => {
                let other = &seeds[rng.below(seeds.len())];
                let i = rng.below(data.len() + 1);
                let j = rng.below(other.len() + 1);
                data.truncate(i);
                data.extend_from_slice(&other[j..]);
            }
            4 => {
                let i = rng.below(data.len() + 1);
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                data.splice(i..i, piece.iter().copied());
            }
            _ if !data.is_empty() => {
                // Repeat a slice: deep nesting, long runs.
                let i = rng.below(data.len());
                let n = 1 + rng.below((data.len() - i).min(8));
                let piece = data[i..i + n].to_vec();
                for _ in 0..rng.below(64) {
                    data.splice(i..i, piece.iter().copied());
                }
            }
            _ => {}
        }
    }
    data.truncate(64 * 1024);
    data
}

fn main() {
    let mut seconds = 60u64;
    let mut wanted: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--seconds" {
            seconds = args
                .next()
                .and_then(|s| s.parse().ok())
                .expect("--seconds N");
        } else {
            wanted.push(arg);
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Quiet panics: they are reported here, with the input.
    panic::set_hook(Box::new(|_| {}));
    let mut failed = false;
    for (name, check) in TARGETS {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        let seeds: Vec<Vec<u8>> = std::fs::read_dir(root.join("corpus").join(name))
            .map(|dir| {
                dir.flatten()
                    .filter_map(|e| std::fs::read(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64 ^ std::process::id() as u64);
        let started = Instant::now();
        let budget = Duration::from_secs(seconds);
        let mut runs = 0u64;
        let mut crashes = 0u64;
        let mut inputs = seeds.clone().into_iter();
        while started.elapsed() < budget {
            let data = inputs.next().unwrap_or_else(|| mutate(&mut rng, &seeds));
            runs += 1;
            if panic::catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
                crashes += 1;
                let hash = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                    (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                });
                let dir = root.join("artifacts").join(name);
                let _ = std::fs::create_dir_all(&dir);
                let path = dir.join(format!("crash-{hash:016x}"));
                let _ = std::fs::write(&path, &data);
                eprintln!(
                    "{name}: PANIC on input {:?} (saved to {})",
                    String::from_utf8_lossy(&data),
                    path.display()
                );
            }
        }
        failed |= crashes > 0;
        println!(
            "{name}: {runs} inputs ({} seeds) in {:.1} s, {crashes} panics",
            seeds.len(),
            started.elapsed().as_secs_f64()
        );
    }
    if failed {
        std::process::exit(1);
    }
}
