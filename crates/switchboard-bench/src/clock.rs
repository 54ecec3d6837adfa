//! Time, the open-loop schedule and the measured payload.
//!
//! Every measured message carries `{"g":step,"s":scheduled,"a":actual}`
//! with wall-clock nanoseconds, so a receiver in another process of the
//! same machine can tell both latencies: from when the message was due
//! (what a user would see; a sender that falls behind does not hide it,
//! the "coordinated omission" trap) and from when it actually left.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::plan::Step;

/// Wall-clock nanoseconds since the epoch.
pub fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// The tokio instant of a wall-clock time (close enough for sleeping).
pub fn instant_at(unix: u64) -> Instant {
    let now_unix = unix_ns();
    let now = Instant::now();
    if unix >= now_unix {
        now + Duration::from_nanos(unix - now_unix)
    } else {
        now.checked_sub(Duration::from_nanos(now_unix - unix)).unwrap_or(now)
    }
}

/// The send times of one sender: evenly spaced, each sender of a worker
/// offset by a fraction of the interval so the worker's sends are spread.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    /// The step the messages belong to.
    pub gen: u32,
    next: u64,
    interval: u64,
    end: u64,
}

impl Pacer {
    /// The schedule of sender `index` of `count` for `step`.
    pub fn new(step: &Step, index: usize, count: usize) -> Option<Self> {
        if step.rate <= 0.0 || count == 0 {
            return None;
        }
        let per_sender = step.rate / count as f64;
        let interval = (1e9 / per_sender).max(1.0) as u64;
        let offset = interval * index as u64 / count as u64;
        Some(Self {
            gen: step.gen,
            next: step.start_unix_ns + offset,
            interval,
            end: step.start_unix_ns + step.duration_ms * 1_000_000,
        })
    }

    /// When the next message is due, or `None` when the step is over.
    pub fn next_due(&self) -> Option<u64> {
        (self.next < self.end).then_some(self.next)
    }

    /// The scheduled time of the next message if it is due at `now`.
    pub fn take_due(&mut self, now: u64) -> Option<u64> {
        let due = self.next_due().filter(|&t| t <= now)?;
        self.next += self.interval;
        Some(due)
    }
}

/// The measured part of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Step number.
    pub gen: u32,
    /// When it was due.
    pub scheduled: u64,
    /// When it was sent.
    pub sent: u64,
}

impl Stamp {
    /// The JSON object, with `padding` extra bytes in a `p` string.
    pub fn json(&self, padding: usize) -> String {
        let mut s = format!("{{\"g\":{},\"s\":{},\"a\":{}", self.gen, self.scheduled, self.sent);
        if padding > 0 {
            s.push_str(",\"p\":\"");
            s.extend(std::iter::repeat_n('x', padding));
            s.push('"');
        }
        s.push('}');
        s
    }
}

/// Every stamp in `text`, wherever the server put it (any key order, any
/// framing around it: a native frame, a socket.io packet, an SSE line, a
/// long-poll array).
///
/// Byte scanning for the one-letter keys, not `str::find`: the generator
/// reads a million frames a second in the fan-out scenarios, and building a
/// substring searcher per search took a quarter of its CPU (`perf`).
pub fn stamps(text: &str) -> impl Iterator<Item = Stamp> + '_ {
    let mut rest = text.as_bytes();
    std::iter::from_fn(move || loop {
        let at = memchr::memmem::find(rest, b"\"g\":")?;
        // The generator's own order, `"g":G,"s":S,"a":A`, read straight on.
        if let Some((stamp, end)) = in_order(&rest[at..]) {
            rest = &rest[at + end..];
            return Some(stamp);
        }
        let open = memchr::memrchr(b'{', &rest[..at]).unwrap_or(0);
        let close = memchr::memchr(b'}', &rest[at..]).map_or(rest.len(), |c| at + c);
        let object = &rest[open..close];
        rest = &rest[close..];
        if let (Some(gen), Some(scheduled), Some(sent)) =
            (number_after(object, b'g'), number_after(object, b's'), number_after(object, b'a'))
        {
            return Some(Stamp { gen: gen as u32, scheduled, sent });
        }
    })
}

/// `"g":G,"s":S,"a":A` at the start of `text`, and where it ends.
fn in_order(text: &[u8]) -> Option<(Stamp, usize)> {
    let (gen, at) = digits(text, 4)?;
    let at = at.checked_add(5).filter(|&a| text.get(a - 5..a) == Some(b",\"s\":"))?;
    let (scheduled, at) = digits(text, at)?;
    let at = at.checked_add(5).filter(|&a| text.get(a - 5..a) == Some(b",\"a\":"))?;
    let (sent, at) = digits(text, at)?;
    Some((Stamp { gen: u32::try_from(gen).ok()?, scheduled, sent }, at))
}

/// The unsigned integer starting at `at`, and where it ends.
fn digits(text: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    let mut end = at;
    while let Some(d) = text.get(end).filter(|b| b.is_ascii_digit()) {
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        end += 1;
    }
    (end > at).then_some((value, end))
}

/// Where the key `"<key>":` starts in `text`.
fn key_at(text: &[u8], key: u8) -> Option<usize> {
    text.windows(4).position(|w| w[0] == b'"' && w[1] == key && w[2] == b'"' && w[3] == b':')
}

/// The unsigned integer after the key `"<key>":` in `text`.
fn number_after(text: &[u8], key: u8) -> Option<u64> {
    let mut at = key_at(text, key)? + 4;
    while text.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    digits(text, at).map(|(value, _)| value)
}

/// The `seq` of a native sequenced frame (`{"seq":N,...`), if it is one.
pub fn native_seq(frame: &str) -> Option<u64> {
    let rest = frame.strip_prefix("{\"seq\":")?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

/// The highest native `seq` anywhere in `text` (a long-poll array).
pub fn max_native_seq(text: &str) -> Option<u64> {
    text.match_indices("{\"seq\":").filter_map(|(i, _)| native_seq(&text[i..])).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_found_in_any_framing() {
        let s = Stamp { gen: 3, scheduled: 1_700_000_000_000_000_000, sent: 1_700_000_000_000_000_500 };
        let native = format!("{{\"seq\":7,\"type\":\"msg\",\"room\":\"b\",\"data\":{}}}", s.json(0));
        assert_eq!(stamps(&native).collect::<Vec<_>>(), vec![s]);
        let sorted = format!("42[\"message\",{{\"a\":{},\"g\":3,\"p\":\"xx\",\"s\":{}}},\"12\"]", s.sent, s.scheduled);
        assert_eq!(stamps(&sorted).collect::<Vec<_>>(), vec![s]);
        let array = format!("[{},{{\"seq\":9,\"type\":\"ack\"}},{}]", native, native.replace("\"seq\":7", "\"seq\":8"));
        assert_eq!(stamps(&array).count(), 2);
        assert_eq!(max_native_seq(&array), Some(9));
        assert_eq!(stamps(&s.json(10)).collect::<Vec<_>>(), vec![s]);
        // Pretty-printed, and after an object that only looks like a stamp.
        let spaced = format!("[{{\"g\":1}},{{\"g\": 3, \"s\": {}, \"a\": {}}}]", s.scheduled, s.sent);
        assert_eq!(stamps(&spaced).collect::<Vec<_>>(), vec![s]);
        assert_eq!(stamps("{\"g\":99999999999999999999999,\"s\":1,\"a\":2}").count(), 0, "overflow is no stamp");
    }

    #[test]
    fn pacer_spreads_and_ends() {
        let step = Step { gen: 1, rate: 1000.0, start_unix_ns: 1_000_000_000, duration_ms: 1000, drain_ms: 0 };
        let mut p = Pacer::new(&step, 1, 10).unwrap();
        let first = p.next_due().unwrap();
        assert_eq!(first, 1_000_000_000 + 1_000_000);
        let mut n = 0;
        while p.take_due(u64::MAX).is_some() {
            n += 1;
        }
        assert_eq!(n, 100);
    }
}
