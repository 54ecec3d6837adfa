//! The metrics counted per message or per frame, kept cheap.
//!
//! - Counters through handles looked up in the installed recorder once per
//!   process: the `counter!` macro looks its key up in the recorder's
//!   registry (and allocates) on every call, about 2.5% of the server's time
//!   in an echo at 500,000 messages a second. The handles are taken at their
//!   first use, so the recorder must be installed before the first message
//!   (the server installs its own before it builds the core); counted before
//!   that, they count nowhere.
//! - `switchboard_delivery_seconds`, one sample per frame a transport takes,
//!   kept here instead of in the recorder: the recorder's histogram stores
//!   every sample until the next upkeep, about 12% of the server's time in
//!   a fan-out of 1.5 million frames a second. Here a batch's frames are
//!   counted into their buckets on the stack and added with one atomic
//!   operation per bucket they fall in; [`render_delivery`] writes it out
//!   in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use metrics::Counter;

/// The counters (see the module's documentation).
pub(crate) struct Hot {
    /// `switchboard_frames_in_total`: upstream frames applied.
    pub frames_in: Counter,
    /// `switchboard_messages_in_total`: chat messages stored.
    pub messages_in: Counter,
    /// `switchboard_messages_out_total`: publications fanned out.
    pub messages_out: Counter,
}

/// The process's counter handles.
pub(crate) fn hot() -> &'static Hot {
    static HOT: OnceLock<Hot> = OnceLock::new();
    HOT.get_or_init(|| Hot {
        frames_in: metrics::counter!("switchboard_frames_in_total"),
        messages_in: metrics::counter!("switchboard_messages_in_total"),
        messages_out: metrics::counter!("switchboard_messages_out_total"),
    })
}

/// Upper bounds of the buckets of the server's histograms, in seconds
/// (the delivery histogram here, the recorder's for the others).
pub const BUCKETS: [f64; 12] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// The same bounds in nanoseconds.
const BOUNDS_NANOS: [u64; BUCKETS.len()] = {
    let mut nanos = [0; BUCKETS.len()];
    let mut i = 0;
    while i < BUCKETS.len() {
        nanos[i] = (BUCKETS[i] * 1e9 + 0.5) as u64; // rounded
        i += 1;
    }
    nanos
};

/// Samples per bucket (the last one: above every bound), not cumulative;
/// the sum of the delays in nanoseconds.
struct Delivery {
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

static DELIVERY: Delivery =
    Delivery { buckets: [const { AtomicU64::new(0) }; BUCKETS.len() + 1], sum_nanos: AtomicU64::new(0) };

/// The delays of one batch, counted on the stack; added to the process's
/// histogram when dropped.
#[derive(Default)]
pub(crate) struct DeliveryBatch {
    buckets: [u32; BUCKETS.len() + 1],
    sum_nanos: u64,
}

impl DeliveryBatch {
    /// Counts one frame's delay from its queueing to its read.
    pub fn add(&mut self, delay: Duration) {
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NANOS.iter().position(|&bound| nanos <= bound).unwrap_or(BOUNDS_NANOS.len());
        self.buckets[bucket] += 1;
        self.sum_nanos = self.sum_nanos.saturating_add(nanos);
    }
}

impl Drop for DeliveryBatch {
    fn drop(&mut self) {
        let mut any = false;
        for (count, total) in self.buckets.iter().zip(&DELIVERY.buckets) {
            if *count > 0 {
                total.fetch_add(u64::from(*count), Ordering::Relaxed);
                any = true;
            }
        }
        if any {
            DELIVERY.sum_nanos.fetch_add(self.sum_nanos, Ordering::Relaxed);
        }
    }
}

/// Appends `switchboard_delivery_seconds` in the Prometheus text format.
pub fn render_delivery(out: &mut String) {
    out.push_str("# TYPE switchboard_delivery_seconds histogram\n");
    let mut cumulative = 0;
    for (i, count) in DELIVERY.buckets.iter().enumerate() {
        cumulative += count.load(Ordering::Relaxed);
        match BUCKETS.get(i) {
            Some(bound) => writeln!(out, "switchboard_delivery_seconds_bucket{{le=\"{bound}\"}} {cumulative}"),
            None => writeln!(out, "switchboard_delivery_seconds_bucket{{le=\"+Inf\"}} {cumulative}"),
        }
        .expect("writing to a String cannot fail");
    }
    let sum = DELIVERY.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
    writeln!(out, "switchboard_delivery_seconds_sum {sum}").expect("writing to a String cannot fail");
    writeln!(out, "switchboard_delivery_seconds_count {cumulative}").expect("writing to a String cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(text: &str, name: &str) -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    }

    #[test]
    fn a_batch_lands_in_its_buckets_with_its_sum_and_count() {
        let mut before = String::new();
        render_delivery(&mut before);
        {
            let mut batch = DeliveryBatch::default();
            batch.add(Duration::from_micros(50)); // le 0.0001
            batch.add(Duration::from_micros(100)); // le 0.0001 (bounds are inclusive)
            batch.add(Duration::from_millis(3)); // le 0.005
            batch.add(Duration::from_secs(2)); // +Inf only
        }
        let mut after = String::new();
        render_delivery(&mut after);
        let grew = |name: &str| series(&after, name) - series(&before, name);
        assert_eq!(grew("switchboard_delivery_seconds_bucket{le=\"0.0001\"}"), 2.0);
        assert_eq!(grew("switchboard_delivery_seconds_bucket{le=\"0.0025\"}"), 2.0);
        assert_eq!(grew("switchboard_delivery_seconds_bucket{le=\"0.005\"}"), 3.0);
        assert_eq!(grew("switchboard_delivery_seconds_bucket{le=\"1\"}"), 3.0);
        assert_eq!(grew("switchboard_delivery_seconds_bucket{le=\"+Inf\"}"), 4.0);
        assert_eq!(grew("switchboard_delivery_seconds_count"), 4.0);
        let sum = grew("switchboard_delivery_seconds_sum");
        assert!((sum - 2.00315).abs() < 1e-9, "sum {sum}");
    }
}
