//! The cluster settings on the command line: `--broker`, `--redis-url`,
//! `--advertise` and `--node-ttl` are layered like every other flag (over
//! the TOML file and the `SWITCHBOARD_*` variables). Every cluster test
//! starts its nodes with these flags (see the testkit's `ClusterOptions`);
//! here the layering itself is checked with `switchboard config`, and a
//! bad value is refused before anything starts.

use std::process::{Command, Output, Stdio};

use switchboard_testkit::serde_json::{self, Value};

fn switchboard(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command.args(args).stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SWITCHBOARD_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    command.output().expect("run switchboard")
}

fn effective(args: &[&str], env: &[(&str, &str)]) -> Value {
    let output = switchboard(args, env);
    assert!(output.status.success(), "switchboard {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("`switchboard config` prints JSON")
}

#[test]
fn cluster_flags_override_the_file_and_the_environment() {
    let dir = std::env::temp_dir().join(format!("switchboard-cli-flags-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("node.toml");
    std::fs::write(&file, "broker = \"local\"\nredis_url = \"redis://file:6379\"\nnode_ttl = \"9s\"\n").unwrap();
    let file = file.to_string_lossy().into_owned();
    let env = [
        ("SWITCHBOARD_REDIS_URL", "redis://env:6379"),
        ("SWITCHBOARD_ADVERTISE", "10.9.9.9:1"),
        ("SWITCHBOARD_REDIS_EVENTS_MAX", "5000"),
    ];

    // Without flags: the file, then the environment.
    let config = effective(&["config", "--config", &file], &env);
    assert_eq!(config["broker"], "local", "{config}");
    assert_eq!(config["redis_url"], "redis://env:6379", "{config}");
    assert_eq!(config["advertise"], "10.9.9.9:1", "{config}");
    assert_eq!(config["node_ttl"], "9s", "{config}");
    assert_eq!(config["redis_events_max"], 5000, "{config}");

    // The flags win over both.
    let args = [
        "config",
        "--config",
        &file,
        "--broker",
        "redis",
        "--redis-url",
        "redis://10.0.0.5:6380/2",
        "--advertise",
        "10.0.0.11:7070",
        "--node-ttl",
        "3s",
    ];
    let config = effective(&args, &env);
    assert_eq!(config["broker"], "redis", "{config}");
    assert_eq!(config["redis_url"], "redis://10.0.0.5:6380/2", "{config}");
    assert_eq!(config["advertise"], "10.0.0.11:7070", "{config}");
    assert_eq!(config["node_ttl"], "3s", "{config}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_cluster_flags_are_refused() {
    for args in [
        &["config", "--broker", "memcached"][..],
        &["config", "--advertise", "not-an-address"][..],
        &["config", "--node-ttl", "soon"][..],
    ] {
        let output = switchboard(args, &[]);
        assert!(
            !output.status.success(),
            "switchboard {args:?} was accepted: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        assert!(!output.stderr.is_empty(), "switchboard {args:?} failed without saying why");
    }
}
