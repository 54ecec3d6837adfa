#![no_main]
//! `cargo +nightly fuzz run socketio_packet`: see `fuzz/README.md` and `src/lib.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::socketio_packet(data));
