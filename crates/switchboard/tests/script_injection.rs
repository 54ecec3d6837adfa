//! §1 and §4: hostile payloads stay inert in htmlfile and JSONP (and every
//! other transport), because the server always escapes `<`, `>`, `&`, U+2028
//! and U+2029; hostile callback names are refused with 400.

use switchboard_testkit::downstream::{unwrap_jsonp, HtmlFileDownstream, WsDownstream};
use switchboard_testkit::http::{encode, HttpRequest};
use switchboard_testkit::room::{create_session, Publisher};
use switchboard_testkit::scenario::ROOM;
use switchboard_testkit::serde_json::Value;
use switchboard_testkit::{bounded, json, next_documented, Attach, Downstream, Frame, TestServer, Transport, Upstream};

fn hostile() -> Vec<Value> {
    vec![
        json!("</script><script>alert(1)</script>"),
        json!("<!--"),
        json!("-->"),
        json!("\u{2028}"),
        json!("\u{2029}"),
        json!("&amp; & &#60;"),
        json!("</SCRIPT ><sCrIpT>alert(2)</ScRiPt>"),
        json!("\"});alert(3);//"),
        json!("]]><![CDATA["),
        json!({"</script>": ["<!--", "\u{2028}\u{2029}", {"&": "<b>"}]}),
    ]
}

/// No character that could end a script element, open an HTML comment or
/// end a JavaScript line survives unescaped in server output.
fn assert_inert(text: &str, what: &str) {
    for bad in ['<', '>', '&', '\u{2028}', '\u{2029}'] {
        assert!(!text.contains(bad), "{what} contains raw {bad:?}: {text:?}");
    }
}

/// A session on `transport` joined to the room, the publisher that will
/// send the hostile payloads, and the session's `sid`.
async fn setup(
    server: &TestServer,
    mut downstream: Box<dyn Downstream>,
) -> anyhow::Result<(Box<dyn Downstream>, Publisher)> {
    let welcome = downstream.next_frame().await?;
    let sid = welcome.str("sid").unwrap_or_default().to_owned();
    Upstream::new(server.addr(), &sid).join(ROOM).await?;
    let ack = next_documented(downstream.as_mut()).await?;
    assert_eq!(ack.typ(), "ack", "{ack}");
    let publisher = Publisher::join(server.addr(), ROOM).await?;
    Ok((downstream, publisher))
}

async fn publish_hostile(publisher: &Publisher) -> anyhow::Result<()> {
    let frames = hostile().into_iter().map(|data| json!({"type":"publish","room":ROOM,"data":data})).collect();
    publisher.upstream().send(frames).await?;
    Ok(())
}

#[tokio::test]
async fn htmlfile_keeps_hostile_payloads_inert() {
    bounded(async {
        let server = TestServer::start().await;
        let publisher = Publisher::join(server.addr(), ROOM).await?;
        let mut html = HtmlFileDownstream::connect(server.addr(), &Attach::new(None, 0)).await?;
        let sid = html.next().await?.str("sid").unwrap_or_default().to_owned();
        Upstream::new(server.addr(), &sid).join(ROOM).await?;
        // Every frame after the welcome, in order (room events too:
        // their bytes are in the body like any other).
        let mut frames: Vec<Frame> = Vec::new();
        loop {
            let frame = html.next().await?;
            frames.push(frame.clone());
            if frame.typ() == "ack" {
                break;
            }
        }
        publish_hostile(&publisher).await?;
        for expected in hostile() {
            let frame = loop {
                let frame = html.next().await?;
                frames.push(frame.clone());
                if frame.typ() == "msg" {
                    break frame;
                }
            };
            assert_eq!(frame.data(), Some(&expected), "round trip of {expected}: {frame}");
        }
        for frame in &frames {
            assert_inert(frame.raw(), "htmlfile frame");
        }

        // The whole body is the preamble followed by exactly these chunks.
        let raw = String::from_utf8(html.raw().to_vec())?;
        assert!(!raw.contains('\u{2028}') && !raw.contains('\u{2029}'), "raw U+2028/9 in {raw:?}");
        let preamble = String::from_utf8(html.preamble().unwrap_or_default().to_vec())?;
        let mut rest = raw.strip_prefix(&preamble).expect("body starts with the preamble");
        let welcome_end = rest.find("</script>").expect("welcome chunk") + "</script>".len();
        rest = &rest[welcome_end..];
        for frame in &frames {
            let chunk = format!("<script>c({});</script>", frame.raw());
            rest = rest.trim_start();
            rest = rest
                .strip_prefix(chunk.as_str())
                .unwrap_or_else(|| panic!("expected {chunk:?}, body continues {rest:?}"));
        }
        assert_eq!(rest.trim(), "", "unexpected bytes after the frames");
        let lower = raw[preamble.len()..].to_ascii_lowercase();
        assert_eq!(lower.matches("</script").count(), frames.len() + 1, "{raw:?}");
        assert!(!lower.contains("<!--"), "{raw:?}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn jsonp_keeps_hostile_payloads_inert() {
    bounded(async {
        let server = TestServer::start().await;
        let addr = server.addr();
        let publisher = Publisher::join(addr, ROOM).await?;
        let (sid, _) = create_session(addr).await?;
        Upstream::new(addr, &sid).join(ROOM).await?;
        publish_hostile(&publisher).await?;

        let mut received: Vec<Value> = Vec::new();
        let mut last = 0;
        while received.iter().filter(|f| f["type"] == "msg").count() < hostile().len() {
            let path = format!("/v1/jsonp?sid={sid}&last={last}&callback=cb");
            let response = HttpRequest::get(path).send(addr).await?;
            assert_eq!(response.status, 200);
            let body = response.text().await?;
            let array = unwrap_jsonp(&body, "cb")?;
            assert_inert(array, "JSONP body");
            let frames: Vec<Value> = switchboard_testkit::serde_json::from_str(array)?;
            for frame in frames {
                last = frame["seq"].as_u64().unwrap_or(last);
                received.push(frame);
            }
        }
        let msgs: Vec<&Value> = received.iter().filter(|f| f["type"] == "msg").collect();
        assert_eq!(msgs.len(), hostile().len());
        for (frame, expected) in msgs.into_iter().zip(hostile()) {
            assert_eq!(frame["data"], expected, "round trip: {frame}");
        }
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// The same escaping on the WebSocket, SSE and NDJSON stream, and in a
/// plain poll's JSON.
#[tokio::test]
async fn every_transport_escapes_hostile_characters() {
    bounded(async {
        let server = TestServer::start().await;
        for transport in [Transport::WebSocket, Transport::Sse, Transport::Stream] {
            let downstream = transport.attach(server.addr(), None, 0).await?;
            let (mut downstream, publisher) = setup(&server, downstream).await?;
            publish_hostile(&publisher).await?;
            for expected in hostile() {
                let frame = next_documented(downstream.as_mut()).await?;
                assert_eq!(frame.data(), Some(&expected), "{transport}: {frame}");
                assert_inert(frame.raw(), &format!("{transport} frame"));
            }
        }

        let publisher = Publisher::join(server.addr(), ROOM).await?;
        let (sid, _) = create_session(server.addr()).await?;
        Upstream::new(server.addr(), &sid).join(ROOM).await?;
        publish_hostile(&publisher).await?;
        let response = HttpRequest::get(format!("/v1/poll?sid={sid}&last=1&wait=0")).send(server.addr()).await?;
        let body = response.text().await?;
        assert_inert(&body, "poll body");
        let frames: Vec<Value> = switchboard_testkit::serde_json::from_str(&body)?;
        let msgs = frames.iter().filter(|f| f["type"] == "msg").count();
        assert_eq!(msgs, hostile().len(), "{body}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn hostile_callback_names_are_refused_with_400() {
    bounded(async {
        let server = TestServer::start().await;
        let hostile_names = [
            "alert(1)//".to_owned(),
            "a;b".to_owned(),
            "<x>".to_owned(),
            "a".repeat(65),
            String::new(),
            "1abc".to_owned(),
            "a..b".to_owned(),
            "a.".to_owned(),
            ".a".to_owned(),
            "a-b".to_owned(),
            "a b".to_owned(),
            "a\nb".to_owned(),
            "é".to_owned(),
            "a[0]".to_owned(),
        ];
        for path in ["/v1/jsonp", "/v1/htmlfile"] {
            for name in &hostile_names {
                let response =
                    HttpRequest::get(format!("{path}?callback={}", encode(name))).send(server.addr()).await?;
                assert_eq!(response.status, 400, "{path} with callback {name:?}");
                let content_type = response.header("content-type").unwrap_or_default();
                let body = response.text().await?;
                assert!(
                    !body.contains("<x>") && !content_type.starts_with("text/html"),
                    "{path}: the refusal reflects the name as HTML: {content_type} {body:?}"
                );
            }
            for name in ["a".repeat(64), "$".to_owned(), "_".to_owned(), "a.b.c".to_owned(), "A1_$.z$9".to_owned()] {
                let response =
                    HttpRequest::get(format!("{path}?callback={}&wait=0", encode(&name))).send(server.addr()).await?;
                assert_eq!(response.status, 200, "{path} with valid callback {name:?}");
            }
        }
        // The WebSocket upgrade is not affected by any of this.
        let mut ws = WsDownstream::connect(server.addr(), &Attach::new(None, 0)).await?;
        assert_eq!(ws.next().await?.typ(), "welcome");
        server.shutdown().await;
        Ok(())
    })
    .await;
}
