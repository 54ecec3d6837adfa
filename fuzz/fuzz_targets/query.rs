#![no_main]
//! `cargo +nightly fuzz run query`: see `fuzz/README.md` and `src/lib.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::query(data));
