//! The configuration: the documented defaults, and the layers in their
//! order (defaults < TOML file < `SWITCHBOARD_*` environment < command
//! line), unknown keys refused with the key's name.
//!
//! Each test runs in its own process (nextest), so setting environment
//! variables here touches no other test.

use std::time::Duration;

use switchboard::Config;
use switchboard_testkit::json;

/// The defaults the issue and `docs/configuration.md` promise.
#[test]
fn defaults_are_the_documented_ones() {
    let config = Config::default();
    assert_eq!(config.listen.port(), 7070);
    assert_eq!(config.grace, Duration::from_secs(30));
    assert_eq!(config.outbox_max_frames, 1024);
    assert_eq!(config.outbox_max_bytes, 1024 * 1024);
    assert_eq!(config.poll_timeout, Duration::from_secs(25));
    assert_eq!(config.stream_budget, 256 * 1024);
    assert_eq!(config.allowed_origins, vec!["*".to_owned()]);
}

/// A later layer wins over an earlier one, setting by setting; a setting
/// no layer names keeps its default.
#[test]
fn file_then_environment_then_command_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("switchboard.toml");
    std::fs::write(&file, "grace = \"10s\"\npoll_timeout = \"5s\"\nheartbeat = \"7s\"\noutbox_max_frames = 64\n")
        .expect("write the config file");
    std::env::set_var("SWITCHBOARD_POLL_TIMEOUT", "6s");
    std::env::set_var("SWITCHBOARD_HEARTBEAT", "8s");
    std::env::set_var("SWITCHBOARD_ALLOWED_ORIGINS", r#"["https://a.example","https://b.example"]"#);
    let config = Config::load(Some(&file), &json!({ "heartbeat": "9s" })).expect("a valid configuration");

    assert_eq!(config.grace, Duration::from_secs(10), "file over default");
    assert_eq!(config.outbox_max_frames, 64, "file over default");
    assert_eq!(config.poll_timeout, Duration::from_secs(6), "environment over file");
    assert_eq!(config.heartbeat, Duration::from_secs(9), "command line over environment");
    assert_eq!(config.allowed_origins, vec!["https://a.example".to_owned(), "https://b.example".to_owned()]);
    assert_eq!(config.stream_budget, 256 * 1024, "untouched default");
}

/// A misspelt key is an error that names it, not a silently ignored line.
#[test]
fn unknown_keys_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("switchboard.toml");
    std::fs::write(&file, "grace_period = \"10s\"\n").expect("write the config file");
    let error = Config::load(Some(&file), &json!({})).expect_err("an unknown key must be refused");
    assert!(error.to_string().contains("grace_period"), "{error}");

    std::fs::write(&file, "grace = \"ten seconds\"\n").expect("write the config file");
    let error = Config::load(Some(&file), &json!({})).expect_err("a bad duration must be refused");
    assert!(error.to_string().contains("grace"), "{error}");
}
