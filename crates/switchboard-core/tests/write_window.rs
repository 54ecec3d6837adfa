//! The write window: a busy attachment that is behind (frames coming less
//! than a quarter window after its previous batch, and waiting for the
//! reader at least a sixteenth of it) lets frames gather until a window
//! after the previous batch (one write for several frames); a frame coming
//! later, or taken as soon as it came, goes out at once; the pacing never
//! loses, repeats or reorders a frame.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchboard_core::frame::Downstream;
use switchboard_core::identity::Credentials;
use switchboard_core::session::Attachment;
use switchboard_core::{Core, CoreOptions, SessionLimits};

const WINDOW: Duration = Duration::from_millis(600);

async fn attached(window: Duration) -> (Arc<Core>, Attachment) {
    let limits = SessionLimits { write_window: window, ..SessionLimits::default() };
    let core = Core::with_options(CoreOptions { limits, ..CoreOptions::default() });
    let creds = Credentials { name: Some("reader".into()), token: None };
    let attachment = core.attach(None, 0, &creds).await.unwrap().attachment;
    (core, attachment)
}

fn push(attachment: &Attachment, text: &str) -> u64 {
    attachment.session().push(Bytes::from(format!("{{\"type\":\"t\",\"n\":\"{text}\"}}"))).unwrap()
}

fn seqs(batch: &[Downstream]) -> Vec<u64> {
    batch.iter().filter_map(Downstream::seq).collect()
}

/// Takes whatever the welcome left, so the next batch starts the test.
async fn drained(attachment: &mut Attachment) {
    while let Some(Ok(_)) = attachment.try_batch(1000) {}
}

/// A reader that has just taken two batches in a row, the second soon
/// after the first (it is busy; the window starts now).
async fn just_written(window: Duration) -> (Arc<Core>, Attachment) {
    let (core, mut reader) = attached(window).await;
    drained(&mut reader).await;
    for text in ["a", "b"] {
        push(&reader, text);
        reader.next_batch(64).await.unwrap();
    }
    (core, reader)
}

/// Asserts that the next batch holds `expected` and came within `bound`.
async fn taken_at_once(reader: &mut Attachment, max: usize, expected: Vec<u64>, bound: Duration, why: &str) {
    let asked = Instant::now();
    assert_eq!(seqs(&reader.next_batch(max).await.unwrap()), expected, "{why}");
    assert!(asked.elapsed() < bound, "{why}: not delayed, but took {:?}", asked.elapsed());
}

#[tokio::test]
async fn frames_arriving_within_the_window_share_one_batch() {
    let (_core, mut reader) = attached(WINDOW).await;
    drained(&mut reader).await;
    let first = push(&reader, "a");
    assert_eq!(seqs(&reader.next_batch(64).await.unwrap()), vec![first], "the first frame goes at once");
    let soon = push(&reader, "soon");
    let started = Instant::now();
    assert_eq!(seqs(&reader.next_batch(64).await.unwrap()), vec![soon], "the second too: not busy before it");
    assert!(started.elapsed() < WINDOW / 2, "not paced: one batch came soon after another, once");

    let second = push(&reader, "b");
    // The reader comes late for it (a node that is behind).
    tokio::time::sleep(WINDOW / 8).await;
    let pusher = {
        let session = reader.session().clone();
        tokio::spawn(async move {
            tokio::time::sleep(WINDOW / 3).await;
            session.push(Bytes::from_static(b"{\"type\":\"t\",\"n\":\"c\"}")).unwrap()
        })
    };
    let batch = reader.next_batch(64).await.unwrap();
    let third = pusher.await.unwrap();
    assert_eq!(seqs(&batch), vec![second, third], "the frame that came during the window joined the batch");
    assert!(started.elapsed() >= WINDOW, "the batch waited for the window's end: {:?}", started.elapsed());
}

/// One frame soon after another, once, is not held, even when the reader
/// comes late for it: only a reader busy twice in a row is paced (two
/// publishes a moment apart in a quiet room are not delayed).
#[tokio::test]
async fn a_frame_soon_after_one_quiet_batch_goes_at_once() {
    let (_core, mut reader) = attached(WINDOW).await;
    drained(&mut reader).await;
    push(&reader, "a");
    reader.next_batch(64).await.unwrap();
    tokio::time::sleep(WINDOW / 2).await;
    push(&reader, "b");
    reader.next_batch(64).await.unwrap();

    let next = push(&reader, "c");
    tokio::time::sleep(WINDOW / 8).await;
    taken_at_once(&mut reader, 64, vec![next], WINDOW / 4, "busy once, after a quiet batch").await;
}

#[tokio::test]
async fn a_frame_more_than_a_quarter_window_after_the_last_batch_goes_at_once() {
    let (_core, mut reader) = just_written(WINDOW).await;
    tokio::time::sleep(WINDOW / 2).await;

    let late = push(&reader, "b");
    taken_at_once(&mut reader, 64, vec![late], WINDOW / 4, "a connection this slow is not paced").await;
}

#[tokio::test]
async fn a_reader_that_keeps_up_is_not_paced() {
    let (_core, mut reader) = just_written(WINDOW).await;

    let next = push(&reader, "b");
    taken_at_once(&mut reader, 64, vec![next], WINDOW / 4, "taken as it came").await;
}

#[tokio::test]
async fn a_full_batch_is_not_held_back() {
    let (_core, mut reader) = just_written(WINDOW).await;

    let expected: Vec<u64> = (0..4).map(|i| push(&reader, &i.to_string())).collect();
    tokio::time::sleep(WINDOW / 8).await;
    taken_at_once(&mut reader, 4, expected, WINDOW / 2, "a full batch (as many frames as one write takes)").await;
}

#[tokio::test]
async fn no_window_writes_every_batch_when_ready() {
    let (_core, mut reader) = just_written(Duration::ZERO).await;
    let next = push(&reader, "b");
    tokio::time::sleep(WINDOW / 8).await;
    taken_at_once(&mut reader, 64, vec![next], WINDOW / 2, "no window").await;
}

#[tokio::test]
async fn a_wait_given_up_midway_loses_nothing() {
    let (_core, mut reader) = just_written(WINDOW).await;

    let mut expected = vec![push(&reader, "b")];
    tokio::time::sleep(WINDOW / 8).await;
    // A transport's select drops the wait when the client's message comes
    // first; the frames stay for the next call.
    let given_up = tokio::time::timeout(WINDOW / 8, reader.next_batch(64)).await;
    assert!(given_up.is_err(), "still inside the window");
    expected.push(push(&reader, "c"));
    assert_eq!(seqs(&reader.next_batch(64).await.unwrap()), expected);
}

/// A reader that answers requests (long polling) is busy for a whole
/// window after its previous answer, not a quarter: a frame that comes
/// half a window later and waits is held until the window ends.
#[tokio::test]
async fn an_answer_is_held_for_a_whole_window_when_behind() {
    let (_core, mut reader) = attached(WINDOW).await;
    drained(&mut reader).await;
    push(&reader, "a");
    assert!(reader.try_answer(64).is_some(), "the first answer goes at once");
    push(&reader, "a2");
    let answered = Instant::now();
    assert!(reader.try_answer(64).is_some(), "the second too: the poller was not busy before");

    tokio::time::sleep(WINDOW / 2).await;
    let late = push(&reader, "b");
    tokio::time::sleep(WINDOW / 8).await;
    assert!(reader.try_answer(64).is_none(), "within the window and behind: held");
    assert_eq!(seqs(&reader.next_answer(64).await.unwrap()), vec![late]);
    assert!(answered.elapsed() >= WINDOW, "answered when the window ended: {:?}", answered.elapsed());
}

#[tokio::test]
async fn an_answer_a_window_after_the_previous_goes_at_once() {
    let (_core, mut reader) = attached(WINDOW).await;
    drained(&mut reader).await;
    push(&reader, "a");
    assert!(reader.try_answer(64).is_some());

    tokio::time::sleep(WINDOW + WINDOW / 8).await;
    let late = push(&reader, "b");
    tokio::time::sleep(WINDOW / 8).await;
    let answer = reader.try_answer(64).expect("not held").unwrap();
    assert_eq!(seqs(&answer), vec![late]);
}
