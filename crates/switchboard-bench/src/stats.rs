//! Counting and HDR histograms: one `Recorder` per worker process (its
//! clients share it: the worker runs on one thread), shipped to the
//! coordinator as V2-serialized, base64 histograms and merged there.

use std::cell::{Cell, RefCell};

use anyhow::Context;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::clock::Stamp;
use crate::plan::StepReport;

/// Highest latency recorded, µs (anything slower is clamped to it).
const MAX_MICROS: u64 = 120_000_000;

/// A latency histogram in microseconds, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

/// The histogram as base64 text.
pub fn encode(h: &Histogram<u64>) -> String {
    use base64::Engine;
    let mut bytes = Vec::new();
    V2Serializer::new().serialize(h, &mut bytes).expect("serializing to memory");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Text from [`encode`] back to a histogram.
pub fn decode(text: &str) -> anyhow::Result<Histogram<u64>> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(text).context("histogram base64")?;
    Deserializer::new().deserialize(&mut bytes.as_slice()).context("histogram bytes")
}

/// What a worker counts during a step.
#[derive(Debug)]
pub struct Recorder {
    gen: Cell<u32>,
    sent: Cell<u64>,
    received: Cell<u64>,
    disconnects: Cell<u64>,
    errors: Cell<u64>,
    latency: RefCell<Histogram<u64>>,
    send_latency: RefCell<Histogram<u64>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            gen: Cell::new(0),
            sent: Cell::new(0),
            received: Cell::new(0),
            disconnects: Cell::new(0),
            errors: Cell::new(0),
            latency: RefCell::new(histogram()),
            send_latency: RefCell::new(histogram()),
        }
    }
}

impl Recorder {
    /// Starts counting step `gen` (0: count nothing).
    pub fn open(&self, gen: u32) {
        self.gen.set(gen);
    }

    /// A message of step `gen` was sent.
    pub fn sent(&self, gen: u32) {
        if gen == self.gen.get() && gen != 0 {
            self.sent.set(self.sent.get() + 1);
        }
    }

    /// A measured message arrived at `now` (wall clock, ns).
    pub fn received(&self, stamp: Stamp, now: u64) {
        if stamp.gen != self.gen.get() || stamp.gen == 0 {
            return;
        }
        self.received.set(self.received.get() + 1);
        let micros = |from: u64| (now.saturating_sub(from) / 1000).clamp(1, MAX_MICROS);
        self.latency.borrow_mut().saturating_record(micros(stamp.scheduled));
        self.send_latency.borrow_mut().saturating_record(micros(stamp.sent));
    }

    /// A client's connection ended while it should have stayed.
    pub fn disconnected(&self) {
        self.disconnects.set(self.disconnects.get() + 1);
    }

    /// A send failed or the server said something unexpected.
    pub fn error(&self) {
        self.errors.set(self.errors.get() + 1);
    }

    /// Stops counting and returns what was counted since `open`.
    pub fn close(&self) -> StepReport {
        self.gen.set(0);
        let report = StepReport {
            sent: self.sent.replace(0),
            received: self.received.replace(0),
            disconnects: self.disconnects.replace(0),
            errors: self.errors.replace(0),
            latency: encode(&self.latency.borrow()),
            send_latency: encode(&self.send_latency.borrow()),
        };
        self.latency.borrow_mut().reset();
        self.send_latency.borrow_mut().reset();
        report
    }
}

/// Percentiles of a histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// The summary of `h` (µs) in ms.
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}
