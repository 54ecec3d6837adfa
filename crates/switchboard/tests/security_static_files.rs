//! Path traversal against static files (`static_dir`, `--static-dir`): no
//! request path reaches a file outside the folder, whatever its spelling —
//! `..` segments, percent-encoded dots and slashes, backslashes, absolute
//! and doubled slashes, NUL bytes — while files inside are served.

use std::time::Duration;

use switchboard_testkit::hardening::{raw_exchange, response_head};
use switchboard_testkit::{bounded, TestServer};

const SECRET: &str = "TOP-SECRET-OUTSIDE-THE-STATIC-DIR";
const PAGE: &str = "<!doctype html><title>public page</title>";

#[tokio::test]
async fn no_request_path_escapes_the_static_folder() {
    bounded(async {
        let root = tempfile::tempdir()?;
        let public = root.path().join("public");
        std::fs::create_dir_all(public.join("sub"))?;
        std::fs::write(public.join("index.html"), PAGE)?;
        std::fs::write(public.join("sub").join("page.html"), PAGE)?;
        std::fs::write(root.path().join("secret.txt"), SECRET)?;
        let absolute = root.path().join("secret.txt");
        let server = TestServer::start_with(|c| c.static_dir = Some(public.clone())).await;
        let addr = server.addr();

        let absolute = absolute.display().to_string();
        let attacks = [
            "/../secret.txt".to_owned(),
            "/../../../../../../etc/passwd".to_owned(),
            "/sub/../../secret.txt".to_owned(),
            "/%2e%2e/secret.txt".to_owned(),
            "/%2E%2E/secret.txt".to_owned(),
            "/%2e%2e%2fsecret.txt".to_owned(),
            "/..%2fsecret.txt".to_owned(),
            "/..%2Fsecret.txt".to_owned(),
            "/%2e%2e%5csecret.txt".to_owned(),
            "/..\\secret.txt".to_owned(),
            "/sub\\..\\..\\secret.txt".to_owned(),
            "/....//secret.txt".to_owned(),
            "/.%2e/secret.txt".to_owned(),
            "/%252e%252e/secret.txt".to_owned(),
            "/..%00/secret.txt".to_owned(),
            "/secret.txt%00.html".to_owned(),
            format!("/{absolute}"),
            format!("//{}", absolute.trim_start_matches('/')),
            format!("/%2f{}", absolute.trim_start_matches('/')),
            "//etc/passwd".to_owned(),
            "/./../secret.txt".to_owned(),
            "/sub/./../../secret.txt".to_owned(),
            "/C:\\Windows\\win.ini".to_owned(),
        ];
        for path in &attacks {
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let (raw, _) = raw_exchange(addr, request.as_bytes(), Duration::from_secs(5)).await?;
            let text = String::from_utf8_lossy(&raw);
            let status = response_head(&raw).map(|(s, _)| s);
            assert!(!text.contains(SECRET) && !text.contains("root:"), "GET {path} leaked a file outside: {text}");
            assert!(matches!(status, Some(400 | 404)), "GET {path}: {text}");
        }
        // Absolute-form request targets are no way out either.
        let request = format!("GET http://x{absolute} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let (raw, _) = raw_exchange(addr, request.as_bytes(), Duration::from_secs(5)).await?;
        assert!(!String::from_utf8_lossy(&raw).contains(SECRET));

        // Inside the folder, files are served.
        for path in ["/", "/index.html", "/sub/page.html"] {
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let (raw, _) = raw_exchange(addr, request.as_bytes(), Duration::from_secs(5)).await?;
            assert_eq!(response_head(&raw).map(|(s, _)| s), Some(200), "GET {path}");
            assert!(String::from_utf8_lossy(&raw).ends_with(PAGE), "GET {path}");
        }
        server.shutdown().await;
        Ok(())
    })
    .await;
}
