//! Each SockJS HTTP receiving transport's framing, as the protocol test
//! suite (sockjs-protocol-0.3.3.py) checks it: xhr-streaming, eventsource
//! and htmlfile (prelude, frames, response limit), JSONP polling with
//! `jsonp_send`, and heartbeats.

use std::time::Duration;

use switchboard_testkit::sockjs::{
    self, assert_cors, assert_not_cached, chunk, content_type, get_text, post, post_text,
};
use switchboard_testkit::{bounded, HttpRequest, TestServer};

async fn server() -> TestServer {
    sockjs::start(Duration::from_secs(25), Duration::from_secs(5)).await
}

async fn server_with(heartbeat: Duration, disconnect_delay: Duration) -> TestServer {
    sockjs::start(heartbeat, disconnect_delay).await
}

#[tokio::test]
async fn xhr_streaming_sends_a_prelude_then_frames_until_the_response_limit() {
    bounded(async {
        let server = server().await;
        let addr = server.addr();
        let mut r = post(addr, "/echo/000/s1/xhr_streaming", "").await?;
        assert_eq!(content_type(&r), "application/javascript;charset=UTF-8");
        assert_cors(&r, "*");
        assert_not_cached(&r);
        assert_eq!(chunk(&mut r).await?, Some(format!("{}\n", "h".repeat(2048))));
        assert_eq!(chunk(&mut r).await?.as_deref(), Some("o\n"));
        let msg = format!("\"{}\"", "x".repeat(128));
        for _ in 0..31 {
            assert_eq!(post_text(addr, "/echo/000/s1/xhr_send", &format!("[{msg}]")).await?.0, 204);
            assert_eq!(chunk(&mut r).await?, Some(format!("a[{msg}]\n")));
        }
        // 4096 bytes of frames were written: the response ends.
        assert_eq!(chunk(&mut r).await?, None);
        Ok(())
    })
    .await;
}
#[tokio::test]
async fn eventsource_frames_are_data_lines_until_the_response_limit() {
    bounded(async {
        let server = server().await;
        let addr = server.addr();
        let mut r = HttpRequest::get("/echo/000/s1/eventsource").send(addr).await?;
        assert_eq!(content_type(&r), "text/event-stream;charset=UTF-8");
        assert_not_cached(&r);
        assert_eq!(chunk(&mut r).await?.as_deref(), Some("\r\n"));
        assert_eq!(chunk(&mut r).await?.as_deref(), Some("data: o\r\n\r\n"));
        post_text(addr, "/echo/000/s1/xhr_send", r#"["x"]"#).await?;
        assert_eq!(chunk(&mut r).await?.as_deref(), Some("data: a[\"x\"]\r\n\r\n"));
        post_text(addr, "/echo/000/s1/xhr_send", r#"["  \u0000\n\r 100%"]"#).await?;
        assert_eq!(chunk(&mut r).await?.as_deref(), Some("data: a[\"  \\u0000\\n\\r 100%25\"]\r\n\r\n"));
        let msg = format!("\"{}\"", "x".repeat(4096));
        post_text(addr, "/echo/000/s1/xhr_send", &format!("[{msg}]")).await?;
        assert_eq!(chunk(&mut r).await?, Some(format!("data: a[{msg}]\r\n\r\n")));
        assert_eq!(chunk(&mut r).await?, None);
        Ok(())
    })
    .await;
}
#[tokio::test]
async fn htmlfile_pads_its_page_and_calls_p_for_every_frame() {
    bounded(async {
        let server = server().await;
        let addr = server.addr();
        let mut r = HttpRequest::get("/echo/000/s1/htmlfile?c=%63allback").send(addr).await?;
        assert_eq!(content_type(&r), "text/html;charset=UTF-8");
        assert_not_cached(&r);
        let page = chunk(&mut r).await?.unwrap_or_default();
        assert!(page.len() > 1024);
        assert!(page.trim().starts_with("<!doctype html>"), "{page}");
        assert!(page.contains("var c = parent.callback;") && page.trim().ends_with("</script>"), "{page}");
        assert_eq!(chunk(&mut r).await?.as_deref(), Some("<script>\np(\"o\");\n</script>\r\n"));
        post_text(addr, "/echo/000/s1/xhr_send", r#"["x","</script>"]"#).await?;
        let frame = chunk(&mut r).await?.unwrap_or_default();
        assert_eq!(frame, "<script>\np(\"a[\\\"x\\\",\\\"\\\\u003c/script\\\\u003e\\\"]\");\n</script>\r\n");
        let msg = "x".repeat(4096);
        post_text(addr, "/echo/000/s1/xhr_send", &format!("[\"{msg}\"]")).await?;
        assert_eq!(chunk(&mut r).await?, Some(format!("<script>\np(\"a[\\\"{msg}\\\"]\");\n</script>\r\n")));
        assert_eq!(chunk(&mut r).await?, None);

        let (status, body) = get_text(addr, "/echo/a/a/htmlfile").await?;
        assert_eq!(status, 500);
        assert!(body.contains("\"callback\" parameter required"));
        assert_eq!(get_text(addr, "/echo/a/a/htmlfile?c=alert(1)").await?.0, 500);
        Ok(())
    })
    .await;
}
#[tokio::test]
async fn jsonp_polling_and_jsonp_send() {
    bounded(async {
        let server = server().await;
        let addr = server.addr();
        let r = HttpRequest::get("/echo/000/s1/jsonp?c=%63allback").send(addr).await?;
        assert_eq!(content_type(&r), "application/javascript;charset=UTF-8");
        assert_eq!(r.header("x-content-type-options").as_deref(), Some("nosniff"));
        assert_not_cached(&r);
        assert_eq!(r.text().await?, "callback(\"o\");\r\n");

        let form = |body: &str| {
            HttpRequest::new(http::Method::POST, "/echo/000/s1/jsonp_send")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.to_owned())
        };
        let sent = form("d=%5B%22x%22%5D").send(addr).await?;
        assert_eq!(sent.status, 200);
        assert_eq!(content_type(&sent), "text/plain;charset=UTF-8");
        assert_not_cached(&sent);
        assert_eq!(sent.text().await?, "ok");
        assert_eq!(get_text(addr, "/echo/000/s1/jsonp?c=%63allback").await?.1, "callback(\"a[\\\"x\\\"]\");\r\n");

        let broken = form("d=%5B%22x").send(addr).await?;
        assert_eq!(broken.status, 500);
        assert!(broken.text().await?.contains("Broken JSON encoding."));
        for body in ["", "d=", "p=p"] {
            let empty = form(body).send(addr).await?;
            assert_eq!(empty.status, 500);
            assert!(empty.text().await?.contains("Payload expected."), "{body}");
        }
        assert_eq!(form("d=%5B%22abc%22%5D").send(addr).await?.text().await?, "ok");
        assert_eq!(post_text(addr, "/echo/000/s1/jsonp_send", r#"["%61bc"]"#).await?, (200, "ok".into()));
        assert_eq!(get_text(addr, "/echo/000/s1/jsonp?c=x").await?.1, "x(\"a[\\\"abc\\\",\\\"%61bc\\\"]\");\r\n");

        let (status, body) = get_text(addr, "/echo/a/a/jsonp").await?;
        assert_eq!(status, 500);
        assert!(body.contains("\"callback\" parameter required"));
        assert_eq!(get_text(addr, "/echo/a/a/jsonp?c=x(1)").await?.0, 500);

        assert_eq!(get_text(addr, "/close/000/s2/jsonp?c=x").await?.1, "x(\"o\");\r\n");
        for _ in 0..2 {
            assert_eq!(get_text(addr, "/close/000/s2/jsonp?c=x").await?.1, "x(\"c[3000,\\\"Go away!\\\"]\");\r\n");
        }
        Ok(())
    })
    .await;
}
#[tokio::test]
async fn idle_receivers_get_heartbeat_frames() {
    bounded(async {
        let server = server_with(Duration::from_millis(200), Duration::from_secs(5)).await;
        let addr = server.addr();
        post_text(addr, "/echo/000/s1/xhr", "").await?;
        assert_eq!(post_text(addr, "/echo/000/s1/xhr", "").await?, (200, "h\n".into()));
        let mut r = post(addr, "/echo/000/s2/xhr_streaming", "").await?;
        chunk(&mut r).await?;
        assert_eq!(chunk(&mut r).await?.as_deref(), Some("o\n"));
        assert_eq!(chunk(&mut r).await?.as_deref(), Some("h\n"));
        assert_eq!(chunk(&mut r).await?.as_deref(), Some("h\n"));
        Ok(())
    })
    .await;
}
