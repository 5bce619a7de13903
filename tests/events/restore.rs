//! event-restore into a second fake dispatcher: streams before events, days and batches in order, exactly
//! once (checkpoints, a lost answer settled by reading the dispatcher, a 409 for lost streams), the
//! selection params and dry_run.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::common::dispatcher::Fake;
use crate::world::{World, fail, ids, result};

pub const PAIRS: &str = "web/click,web/view,app/open";

/// A source with three pairs spanning several days, backed up under `prefix`.
pub fn backed_up(prefix: &str, events: usize) -> World {
    let w = World::start();
    w.seed(
        json!({"pairs": [["web", "click"], ["web", "view"], ["app", "open"]], "events": events,
                  "streams": 120, "max_size": 30000, "spacing_ms": 400000, "seed": 5}),
    );
    result(&w.backup(prefix, PAIRS, &["batch=100"]));
    w
}

/// The ids the target was given per pair, in the order it accepted them.
pub fn restored(target: &Fake) -> (Value, BTreeSet<String>) {
    let (_, r) = target.json("GET", "/_fake/restored", None);
    let streams = r["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    (r["events"].clone(), streams)
}

/// Panics unless every stream POST in the target's log comes before the first events POST.
pub fn assert_streams_first(target: &Fake) {
    let (_, log) = target.json("GET", "/_fake/log", None);
    let posts: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "POST")
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    let first_event = posts.iter().position(|p| p.contains("/restore/events/"));
    let last_stream = posts.iter().rposition(|p| p.contains("/restore/streams/"));
    if let (Some(e), Some(s)) = (first_event, last_stream) {
        assert!(
            s < e,
            "a stream was posted after the first events: {posts:?}"
        );
    }
}

/// Panics unless the target holds every stored event exactly once, in order, and every stored stream.
pub fn assert_restored_exactly(w: &World, prefix: &str, target: &Fake) {
    let (events, streams) = restored(target);
    for (pair, stored) in w.stored_events(prefix) {
        let got: Vec<String> = events[&pair]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        assert_eq!(
            got,
            ids(&stored),
            "{pair}: every event exactly once, in order"
        );
    }
    assert_eq!(streams, w.stored_streams(prefix), "every stream");
}

#[test]
fn streams_first_then_events_by_day_exactly_once_and_a_rerun_sends_nothing() {
    let w = backed_up("r1", 400);
    let days: BTreeSet<String> = w
        .stored_batches("r1")
        .values()
        .flatten()
        .map(|(k, _)| k.split('/').nth(4).unwrap().to_string())
        .collect();
    assert!(days.len() >= 3, "the data spans days: {days:?}");
    let target = Fake::start();
    let r = result(&w.restore(&target, "r1", &[]));
    assert_eq!(r["events"], 1200, "{r}");
    assert_restored_exactly(&w, "r1", &target);
    assert_streams_first(&target);
    // Events arrive in time order per pair (days sorted, batches sorted within a day).
    let (_, log) = target.json("GET", "/_fake/log", None);
    let before = log.as_array().unwrap().len();
    let again = result(&w.restore(&target, "r1", &[]));
    assert_eq!(
        (again["events"].as_u64(), again["streams"].as_u64()),
        (Some(0), Some(0)),
        "{again}"
    );
    let (_, log) = target.json("GET", "/_fake/log", None);
    assert_eq!(
        log.as_array().unwrap().len(),
        before,
        "the checkpoints: nothing sent again"
    );
}

#[test]
fn selection_by_day_source_and_type_and_dry_run_counts_without_sending() {
    let w = backed_up("r2", 300);
    let batches = w.stored_batches("r2");
    let day_of = |k: &str| k.split('/').nth(4).unwrap().to_string();
    let days: Vec<String> = batches["web/click"]
        .iter()
        .map(|(k, _)| day_of(k))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let day = &days[1];
    let target = Fake::start();
    let dry = result(&w.restore(&target, "r2", &["dry_run=true"]));
    assert_eq!(dry["pairs"]["web/click"]["events"], 300, "{dry}");
    assert_eq!(
        dry["streams"]["web"]["count"].as_u64().unwrap() as usize,
        w.stored_streams("r2")
            .iter()
            .filter(|s| s.starts_with("web/"))
            .count()
    );
    let (_, log) = target.json("GET", "/_fake/log", None);
    assert!(
        log.as_array().unwrap().is_empty(),
        "a dry run sends nothing: {log}"
    );

    let r = result(&w.restore(
        &target,
        "r2",
        &[
            "sources=web",
            "event_types=click",
            &format!("from={day}"),
            &format!("to={day}"),
        ],
    ));
    let want: Vec<String> = batches["web/click"]
        .iter()
        .filter(|(k, _)| &day_of(k) == day)
        .flat_map(|(_, e)| ids(e))
        .collect();
    let (events, streams) = restored(&target);
    let got: Vec<String> = events["web/click"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, want, "only that day's batches of web/click");
    assert_eq!(
        events.as_object().unwrap().len(),
        1,
        "no other pair: {events}"
    );
    assert!(
        streams.iter().all(|s| s.starts_with("web/")),
        "only the web source's streams"
    );
    assert_eq!(r["events"].as_u64().unwrap() as usize, want.len());
}

#[test]
fn a_lost_answer_is_settled_by_reading_the_dispatcher_and_lost_streams_are_sent_again() {
    let w = backed_up("r3", 300);
    // Two batches are applied but their answers are lost (the connection closes): read back, not resent.
    let target = Fake::start();
    fail(
        &target,
        json!({"method": "POST", "path_contains": "/restore/events/", "status": 0, "after": true, "count": 2}),
    );
    let r = result(&w.restore(&target, "r3", &[]));
    assert_eq!(
        (r["in_doubt"].as_u64(), r["in_doubt_found"].as_u64()),
        (Some(2), Some(2)),
        "{r}"
    );
    assert_restored_exactly(&w, "r3", &target);

    // A 503 that applied nothing: read back, not found, sent again.
    let target = Fake::start();
    fail(
        &target,
        json!({"method": "POST", "path_contains": "/restore/events/", "status": 503, "count": 1}),
    );
    let r = result(&w.restore(&target, "r3", &[]));
    assert_eq!(
        (r["in_doubt"].as_u64(), r["in_doubt_found"].as_u64()),
        (Some(1), Some(0)),
        "{r}"
    );
    assert_restored_exactly(&w, "r3", &target);

    // Three streams answered 201 but not kept: the batches naming them get a 409, the streams are sent
    // again from the backup, and the batch is retried.
    let target = Fake::start();
    fail(
        &target,
        json!({"method": "POST", "path_contains": "/restore/streams/", "status": 201, "count": 3,
                         "body": {"created": true}}),
    );
    let r = result(&w.restore(&target, "r3", &[]));
    assert_eq!(r["missing_restored"], 3, "{r}");
    assert_restored_exactly(&w, "r3", &target);
}

#[test]
fn a_damaged_batch_stops_its_pair_with_an_error_naming_it() {
    let w = backed_up("r4", 200);
    let batches = w.stored_batches("r4");
    let (bad, _) = &batches["app/open"][1];
    let (status, _) = w.s3.owner_request(
        "PUT",
        &format!("/{}/{bad}", crate::world::BUCKET),
        Some(b"not gzip".to_vec()),
    );
    assert_eq!(status, 200);
    let target = Fake::start();
    let out = w.restore(&target, "r4", &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        crate::common::process::text(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(bad.as_str()) && err.contains("not gzip JSON lines"),
        "{err}"
    );
    let (events, _) = restored(&target);
    let got = events["app/open"].as_array().map(|a| a.len()).unwrap_or(0);
    assert_eq!(
        got,
        batches["app/open"][0].1.len(),
        "only the batch before the damaged one"
    );
}
