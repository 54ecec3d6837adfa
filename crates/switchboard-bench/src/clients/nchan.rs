//! nginx + nchan, the plain-HTTP peer: subscribers on `GET /sub/<channel>`
//! as an EventSource (`Accept: text/event-stream`) or by long polling
//! (each answer holds every message newer than the `Last-Modified` /
//! `Etag` the client sends back, newline-separated: the peer's config sets
//! `nchan_longpoll_multipart_response raw`); publishers `POST
//! /pub/<channel>`, one request at a time per connection.

use std::rc::Rc;

use anyhow::bail;
use http::Method;
use http_body_util::BodyExt;

use super::{measure, Client, Running, Schedule};
use crate::net::Lines;
use crate::plan::{Protocol, Role};

/// Opens a subscriber (idle or measuring) or a publisher.
pub async fn open(protocol: Protocol, client: Client) -> anyhow::Result<Running> {
    let shared = Rc::clone(&client.shared);
    let mut http = client.net().http().await?;
    let sub = format!("/sub/{}", shared.room);
    let subscriber = client.role == Role::Subscriber;
    match (protocol, client.role) {
        (Protocol::NchanPost, Role::Publisher) => Ok(Box::pin(async move {
            let path = format!("/pub/{}", shared.room);
            let mut schedule = Schedule::new(&client);
            loop {
                let stamp = schedule.next().await;
                shared.recorder.sent(stamp.gen);
                match http.post_text(&path, stamp.json(shared.padding)).await {
                    Ok((status, _)) if status.is_success() => {}
                    _ => shared.recorder.error(),
                }
                if !http.is_open() {
                    match client.net().http().await {
                        Ok(h) => http = h,
                        Err(_) => break,
                    }
                }
            }
            shared.recorder.disconnected();
        })),
        (Protocol::NchanSse, Role::Idle | Role::Subscriber) => {
            let response = http.send(Method::GET, &sub, &[("accept", "text/event-stream")], "").await?;
            if !response.status().is_success() {
                bail!("GET {sub}: {}", response.status());
            }
            let mut lines = Lines::new(response.into_body());
            Ok(Box::pin(async move {
                let _keep = http;
                while let Ok(Some(line)) = lines.next().await {
                    if subscriber && line.starts_with("data:") {
                        measure(&shared, &line);
                    }
                }
                shared.recorder.disconnected();
            }))
        }
        (Protocol::NchanLongpoll, Role::Idle | Role::Subscriber) => Ok(Box::pin(async move {
            let mut since: Option<(String, String)> = None;
            loop {
                let mut headers = Vec::new();
                if let Some((modified, etag)) = &since {
                    headers.push(("if-modified-since", modified.as_str()));
                    headers.push(("if-none-match", etag.as_str()));
                }
                let response = match http.send(Method::GET, &sub, &headers, "").await {
                    Ok(r) => r,
                    Err(_) => break,
                };
                let status = response.status();
                let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
                if let (Some(modified), Some(etag)) = (header("last-modified"), header("etag")) {
                    since = Some((modified, etag));
                }
                let Ok(body) = response.into_body().collect().await else {
                    break;
                };
                if status.is_success() && subscriber {
                    measure(&shared, &String::from_utf8_lossy(&body.to_bytes()));
                } else if !status.is_success()
                    && status != http::StatusCode::NOT_MODIFIED
                    && status != http::StatusCode::REQUEST_TIMEOUT
                {
                    break;
                }
                if !http.is_open() {
                    match shared.net.http().await {
                        Ok(h) => http = h,
                        Err(_) => break,
                    }
                }
            }
            shared.recorder.disconnected();
        })),
        (protocol, role) => bail!("{protocol:?} cannot be a {role:?} client"),
    }
}
