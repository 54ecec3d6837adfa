//! The bounded, seq-numbered queue of frames of one session.
//!
//! Frames stay until the client acknowledges a seq at or past them. When
//! the outbox is over either bound the oldest frames are dropped — even
//! unacknowledged ones — and the hole is reported as an explicit gap, never
//! skipped silently: every seq in `(acked, first held)` was dropped by
//! overflow, so a reader that wants one of those learns exactly which.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use crate::frame::Downstream;

/// What a reader positioned at some seq gets next.
#[derive(Debug)]
pub struct Batch {
    /// `Some((from, to))` when seqs `from..=to` were dropped before the reader
    /// got them.
    pub gap: Option<(u64, u64)>,
    /// Frames in seq order, starting right after the gap (if any).
    pub frames: Vec<Downstream>,
}

/// The frames of one session not yet acknowledged.
#[derive(Debug)]
pub struct Outbox {
    /// (seq, body, when it was queued)
    frames: VecDeque<(u64, Bytes, Instant)>,
    bytes: usize,
    /// Highest seq the client acknowledged (0: none).
    acked: u64,
    /// The seq the next pushed frame gets.
    next_seq: u64,
    max_frames: usize,
    max_bytes: usize,
}

impl Outbox {
    /// An empty outbox; the first frame gets seq 1.
    pub fn new(max_frames: usize, max_bytes: usize) -> Self {
        Self { frames: VecDeque::new(), bytes: 0, acked: 0, next_seq: 1, max_frames: max_frames.max(1), max_bytes }
    }

    /// Appends a frame body, returns its seq. Drops the oldest frames while
    /// over a bound (the newest frame is always kept).
    pub fn push(&mut self, body: Bytes) -> u64 {
        self.push_at(body, Instant::now())
    }

    /// [`Outbox::push`] with the time it was queued given (a fan-out reads
    /// the clock once for all its recipients).
    pub fn push_at(&mut self, body: Bytes, queued: Instant) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += body.len();
        self.frames.push_back((seq, body, queued));
        while self.frames.len() > 1 && (self.frames.len() > self.max_frames || self.bytes > self.max_bytes) {
            if let Some((_, dropped, _)) = self.frames.pop_front() {
                self.bytes -= dropped.len();
            }
        }
        seq
    }

    /// The client has processed everything up to `seq`: free it. Acks past
    /// the last assigned seq are clamped to it.
    pub fn ack(&mut self, seq: u64) {
        let seq = seq.min(self.next_seq - 1);
        if seq <= self.acked {
            return;
        }
        self.acked = seq;
        while let Some((front, body, _)) = self.frames.front() {
            if *front > seq {
                break;
            }
            self.bytes -= body.len();
            self.frames.pop_front();
        }
    }

    /// Where a reader that has processed up to `last` starts: the first seq
    /// it has not seen (acknowledged frames are never sent again).
    pub fn start_after(&self, last: u64) -> u64 {
        last.max(self.acked).min(self.next_seq - 1) + 1
    }

    /// Up to `max` frames from seq `next` on, with the gap before them if
    /// some of what the reader wants was dropped. `now` is the reader's one
    /// clock read for the batch (not one per frame: in a fan-out it is paid
    /// once per member per publish); the frames' delivery delays count
    /// from it.
    pub fn read_from(&self, next: u64, max: usize, now: Instant) -> Batch {
        let first_held = self.frames.front().map_or(self.next_seq, |(s, _, _)| *s);
        let start = next.max(self.acked + 1);
        let gap = (start < first_held).then(|| (start, first_held - 1));
        let from = start.max(first_held);
        let skip = (from - first_held) as usize;
        let mut delivery = crate::stats::DeliveryBatch::default();
        let frames = self
            .frames
            .iter()
            .skip(skip)
            .take(max)
            .map(|(seq, body, queued)| {
                delivery.add(now.saturating_duration_since(*queued));
                Downstream::Sequenced { seq: *seq, body: body.clone() }
            })
            .collect();
        Batch { gap, frames }
    }

    /// When the first frame a reader at `next` would read was queued.
    pub fn queued_at(&self, next: u64) -> Option<Instant> {
        let first_held = self.frames.front()?.0;
        let index = next.saturating_sub(first_held) as usize;
        self.frames.get(index).map(|(_, _, queued)| *queued)
    }

    /// Whether a reader at `next` has something to read (frames or a gap).
    pub fn has_from(&self, next: u64) -> bool {
        next < self.next_seq
    }

    /// The seq the next frame will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Frames held.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Bytes held (frame bodies).
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(batch: &Batch) -> Vec<u64> {
        batch.frames.iter().filter_map(Downstream::seq).collect()
    }

    fn body(n: usize) -> Bytes {
        Bytes::from(vec![b'x'; n])
    }

    #[test]
    fn seqs_increase_and_ack_frees() {
        let mut o = Outbox::new(10, 1000);
        for _ in 0..5 {
            o.push(body(1));
        }
        assert_eq!(seqs(&o.read_from(1, 100, Instant::now())), vec![1, 2, 3, 4, 5]);
        o.ack(3);
        assert_eq!(o.len(), 2);
        assert_eq!(o.start_after(0), 4);
        let b = o.read_from(o.start_after(1), 100, Instant::now());
        assert_eq!(b.gap, None);
        assert_eq!(seqs(&b), vec![4, 5]);
    }

    #[test]
    fn overflow_by_count_reports_exact_gap() {
        let mut o = Outbox::new(3, 1000);
        for _ in 0..10 {
            o.push(body(1));
        }
        let b = o.read_from(o.start_after(2), 100, Instant::now());
        assert_eq!(b.gap, Some((3, 7)));
        assert_eq!(seqs(&b), vec![8, 9, 10]);
    }

    #[test]
    fn overflow_by_bytes_keeps_newest() {
        let mut o = Outbox::new(100, 10);
        o.push(body(6));
        o.push(body(6));
        assert_eq!(o.len(), 1);
        assert_eq!(o.bytes(), 6);
        let b = o.read_from(1, 10, Instant::now());
        assert_eq!(b.gap, Some((1, 1)));
        assert_eq!(seqs(&b), vec![2]);
    }

    #[test]
    fn acked_frames_are_not_a_gap() {
        let mut o = Outbox::new(3, 1000);
        for _ in 0..3 {
            o.push(body(1));
        }
        o.ack(3);
        o.push(body(1));
        let b = o.read_from(o.start_after(0), 10, Instant::now());
        assert_eq!(b.gap, None);
        assert_eq!(seqs(&b), vec![4]);
    }

    #[test]
    fn ack_beyond_assigned_is_clamped() {
        let mut o = Outbox::new(3, 1000);
        o.push(body(1));
        o.ack(1_000_000);
        o.push(body(1));
        assert_eq!(seqs(&o.read_from(o.start_after(0), 10, Instant::now())), vec![2]);
    }
}
