//! Script injection, beyond `script_injection.rs` (hostile *payloads* on
//! the native transports, hostile native callback names): every value the
//! server reflects into a `<script>` or a JSONP call stays inert, whoever
//! chose it: the `cid` a client picked and the room name it asked for
//! (echoed in `ack` and `error` frames), and SockJS's htmlfile and JSONP
//! transports with hostile messages and callback names. Error answers that
//! quote the request are JSON marked `nosniff`, never HTML.

use switchboard_testkit::downstream::HtmlFileDownstream;
use switchboard_testkit::http::{encode, HttpRequest};
use switchboard_testkit::room::create_session;
use switchboard_testkit::serde_json::{self, Value};
use switchboard_testkit::sockjs::chunk;
use switchboard_testkit::{bounded, json, Attach, TestServer, Upstream};

const HOSTILE: [&str; 8] = [
    "</script><script>alert(1)</script>",
    "<!--",
    "-->",
    "\u{2028}\u{2029}",
    "</SCRIPT ><img src=x onerror=alert(2)>",
    "\"});alert(3);//",
    "&lt;&#60;&amp;",
    "]]><![CDATA[",
];

fn assert_inert(text: &str, what: &str) {
    for bad in ['<', '>', '&', '\u{2028}', '\u{2029}'] {
        assert!(!text.contains(bad), "{what} contains raw {bad:?}: {text:?}");
    }
}

/// A cid and a room name of the client's choosing come back in `ack` and
/// `error` frames; on htmlfile and JSONP they are escaped like any payload.
#[tokio::test]
async fn reflected_cids_and_room_names_stay_inert_in_htmlfile_and_jsonp() {
    bounded(async {
        let server = TestServer::start().await;
        let addr = server.addr();
        let frames: Vec<Value> = HOSTILE
            .iter()
            .enumerate()
            .flat_map(|(i, text)| {
                // Room names may hold markup (no control characters); an
                // unjoined room is refused with a message quoting it.
                let room: String = text.chars().filter(|c| !c.is_control()).collect();
                [
                    json!({"type":"join","room":room,"cid":format!("{text}-{i}")}),
                    json!({"type":"publish","room":format!("{room}!"),"data":1,"cid":format!("p{text}{i}")}),
                    json!({"type":"echo","data":text,"cid":format!("{i}{text}")}),
                ]
            })
            .collect();

        let mut html = HtmlFileDownstream::connect(addr, &Attach::new(None, 0)).await?;
        let sid = html.next().await?.str("sid").unwrap_or_default().to_owned();
        Upstream::new(addr, &sid).post(Value::Array(frames.clone()).to_string()).await?;
        // Answers carry the cid; presence frames (quoting the rooms) come
        // in between; every frame is checked.
        let mut answers = Vec::new();
        let mut chunks = 0;
        while answers.len() < frames.len() {
            let frame = html.next().await?;
            chunks += 1;
            assert_inert(frame.raw(), "htmlfile frame");
            if frame.cid().is_some() {
                answers.push(frame);
            }
        }
        // Every cid came back intact (after JSON decoding) and inert (raw).
        for (sent, got) in frames.iter().zip(&answers) {
            assert_eq!(Some(sent["cid"].as_str().unwrap_or_default()), got.cid(), "{got}");
        }
        assert!(answers.iter().any(|a| a.code() == Some(4403)), "no refusal quoting a room: {answers:?}");
        let raw = String::from_utf8(html.raw().to_vec())?;
        let preamble = String::from_utf8(html.preamble().unwrap_or_default().to_vec())?;
        let body = raw.strip_prefix(&preamble).unwrap_or(&raw).to_ascii_lowercase();
        // One `</script>` per chunk: the welcome and each frame after it.
        assert_eq!(body.matches("</script").count(), chunks + 1, "{raw:?}");
        assert!(!body.contains("<!--") && !body.contains("<img"), "{raw:?}");

        // The same answers again through JSONP (a new session).
        let (sid, _) = create_session(addr).await?;
        Upstream::new(addr, &sid).post(Value::Array(frames.clone()).to_string()).await?;
        let response = HttpRequest::get(format!("/v1/jsonp?sid={sid}&last=0&wait=0&callback=cb")).send(addr).await?;
        let text = response.text().await?;
        let array = text.strip_prefix("/**/cb(").and_then(|t| t.strip_suffix(");")).unwrap_or("");
        assert_inert(array, "JSONP answer");
        let parsed: Vec<Value> = serde_json::from_str(array)?;
        let answered = parsed.iter().filter(|f| f["cid"].is_string()).count();
        assert_eq!(answered, frames.len(), "{text}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// The JS string literal of a SockJS JSONP or htmlfile call, decoded:
/// `cb("a[...]");` -> `a[...]`.
fn sockjs_call_argument(text: &str, callback: &str) -> anyhow::Result<String> {
    let start = text.find(&format!("{callback}(")).ok_or_else(|| anyhow::anyhow!("no call in {text:?}"))?;
    let rest = &text[start + callback.len() + 1..];
    let end = rest.rfind(");").ok_or_else(|| anyhow::anyhow!("no end of call in {text:?}"))?;
    Ok(serde_json::from_str(&rest[..end])?)
}

#[tokio::test]
async fn sockjs_jsonp_and_htmlfile_keep_hostile_messages_inert() {
    bounded(async {
        let server = TestServer::start().await;
        let addr = server.addr();
        let messages: Vec<&str> = HOSTILE.to_vec();
        let send = |session: &'static str| {
            let body = serde_json::to_string(&messages).expect("strings");
            HttpRequest::post(format!("/sockjs/echo/000/{session}/xhr_send"), body).send(addr)
        };

        // JSONP polling: open, send, receive the echoes.
        let open = HttpRequest::get("/sockjs/echo/000/jsonp1/jsonp?c=cb").send(addr).await?.text().await?;
        assert_eq!(sockjs_call_argument(&open, "cb")?, "o");
        assert_eq!(send("jsonp1").await?.status, 204);
        let text = HttpRequest::get("/sockjs/echo/000/jsonp1/jsonp?c=cb").send(addr).await?.text().await?;
        assert_inert(text.strip_prefix("cb(").unwrap_or(&text), "SockJS JSONP answer");
        let frame = sockjs_call_argument(&text, "cb")?;
        let echoed: Vec<String> = serde_json::from_str(frame.strip_prefix('a').unwrap_or(&frame))?;
        assert_eq!(echoed, messages);

        // htmlfile: the page, the open frame, then the echoes in one chunk.
        let mut page = HttpRequest::get("/sockjs/echo/000/html1/htmlfile?c=cb").send(addr).await?;
        let mut seen = String::new();
        while !seen.contains("p(\"o\")") {
            seen.push_str(&chunk(&mut page).await?.unwrap_or_default());
        }
        let preamble_end = seen.find("<script>\np(\"o\")").unwrap_or(0);
        assert_eq!(send("html1").await?.status, 204);
        let mut frames = seen[preamble_end..].to_owned();
        while !frames.contains("a[") || !frames.ends_with("</script>\r\n") {
            frames.push_str(&chunk(&mut page).await?.unwrap_or_default());
        }
        for piece in frames.split("<script>\n").filter(|p| !p.is_empty()) {
            let inner = piece.strip_suffix("\n</script>\r\n").unwrap_or(piece);
            assert_inert(inner, "SockJS htmlfile chunk");
        }
        let lower = frames.to_ascii_lowercase();
        assert_eq!(lower.matches("</script").count(), lower.matches("<script>").count(), "{frames:?}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn sockjs_refuses_hostile_callback_names_without_reflecting_them() {
    bounded(async {
        let server = TestServer::start().await;
        let addr = server.addr();
        let long = "a".repeat(33);
        let names: [&str; 10] = ["alert(1)", "a;b", "<x>", "a b", "a\"b", "é", "a\nb", &long, "x)//", "a%3Cb"];
        for name in names {
            for transport in ["jsonp", "htmlfile"] {
                let path = format!("/sockjs/echo/000/cb1/{transport}?c={}", encode(name));
                let response = HttpRequest::get(&path).send(addr).await?;
                assert_eq!(response.status, 500, "{path}");
                let content_type = response.header("content-type").unwrap_or_default();
                let body = response.text().await?;
                assert!(!content_type.starts_with("text/html"), "{path}: {content_type}");
                assert!(!body.contains('<') && !body.contains(name), "{path}: the refusal reflects the name: {body:?}");
            }
        }
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// Error answers may quote what the client sent; they are JSON with
/// `X-Content-Type-Options: nosniff`, so no browser renders them as HTML.
#[tokio::test]
async fn error_answers_quoting_the_request_are_not_sniffable() {
    bounded(async {
        let server = TestServer::start().await;
        let addr = server.addr();
        for path in [
            "/v1/poll?last=%3Cscript%3Ealert(1)%3C/script%3E".to_owned(),
            "/v1/nothing-%3Cscript%3E".to_owned(),
            "/static-%3Cscript%3E.html".to_owned(),
            format!("/v1/jsonp?callback={}", encode("<script>")),
            "/api/v1/rooms".to_owned(),
        ] {
            let response = HttpRequest::get(&path).send(addr).await?;
            assert!(response.status.is_client_error(), "{path}: {}", response.status);
            let content_type = response.header("content-type").unwrap_or_default();
            assert!(content_type.starts_with("application/json"), "{path}: {content_type}");
            assert_eq!(response.header("x-content-type-options").as_deref(), Some("nosniff"), "{path}");
            let body: Value = response.json().await?;
            assert!(body["code"].is_u64() && body["message"].is_string(), "{path}: {body}");
        }
        server.shutdown().await;
        Ok(())
    })
    .await;
}
