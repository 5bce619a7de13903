//! The fake event dispatcher (tests/fakes/dispatcher_fake.py) holds to the contract in api-notes.md
//! ("Event dispatcher") that event-backup and event-restore will be tested against: cursors page through
//! every event once, streams are the bytes their sha256 names, restore answers 201/200/400/409 as
//! documented, a restarted source serves events again, and faults (503, an answer lost after applying)
//! behave as the shared fake plumbing promises.

mod common;

use common::dispatcher::Fake;
use serde_json::{Value, json};
use sha2::Digest;

fn sha(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn events_page_through_once_in_order_and_a_restart_serves_some_again() {
    let f = Fake::start();
    let (_, seeded) = f.json(
        "POST",
        "/_fake/seed",
        Some(json!({"pairs": [["web", "click"], ["app", "view"]], "events": 25, "streams": 5})),
    );
    assert_eq!(seeded["events"], 50, "{seeded}");
    let (events, end) = f.read_all("web/click", 7, None);
    let ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 25);
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), 25, "no event twice");
    assert!(
        events
            .windows(2)
            .all(|w| w[0]["timestamp"].as_i64() < w[1]["timestamp"].as_i64()),
        "in time order"
    );
    // Caught up: an empty page, more=false, the same place.
    let (status, page) = f.json(
        "GET",
        &format!("/api/v1/events/web/click?cursor={end}"),
        None,
    );
    assert_eq!(
        (
            status,
            page["events"].as_array().unwrap().len(),
            page["more"].as_bool()
        ),
        (200, 0, Some(false))
    );
    // New events arrive; the old cursor reads exactly those.
    f.json(
        "POST",
        "/_fake/append",
        Some(json!({"source": "web", "event_type": "click", "count": 3})),
    );
    let (more, end2) = f.read_all("web/click", 100, Some(end.clone()));
    assert_eq!(more.len(), 3);
    // A restart serves the last 2 again.
    f.json(
        "POST",
        "/_fake/restart",
        Some(json!({"source": "web", "event_type": "click", "replay": 2})),
    );
    let (again, _) = f.read_all("web/click", 100, Some(end2));
    assert_eq!(again.len(), 2, "{again:?}");
    assert_eq!(again[1]["id"], more[2]["id"]);
    // A cursor of another pair, or made up, is refused; so is a limit out of range.
    assert_eq!(
        f.json(
            "GET",
            &format!("/api/v1/events/app/view?cursor={end}"),
            None
        )
        .0,
        400
    );
    assert_eq!(
        f.json("GET", "/api/v1/events/web/click?cursor=made-up", None)
            .0,
        400
    );
    assert_eq!(
        f.json("GET", "/api/v1/events/web/click?limit=1001", None).0,
        400
    );
    assert_eq!(f.json("GET", "/api/v1/events/web/nothing", None).0, 404);
}

#[test]
fn streams_are_their_bytes_and_restore_answers_as_documented() {
    let f = Fake::start();
    f.json(
        "POST",
        "/_fake/seed",
        Some(json!({"pairs": [["web", "click"]], "events": 30, "streams": 4, "refs": 2})),
    );
    let (events, _) = f.read_all("web/click", 100, None);
    let refs: Vec<&Value> = events
        .iter()
        .flat_map(|e| e["streams"].as_array().unwrap())
        .collect();
    assert_eq!(refs.len(), 60);
    let distinct: std::collections::BTreeSet<&str> =
        refs.iter().map(|s| s["sha256"].as_str().unwrap()).collect();
    assert!(
        distinct.len() <= 4,
        "60 references to at most 4 streams: most repeat"
    );
    let s = refs[0];
    let (label, want) = (s["label"].as_str().unwrap(), s["sha256"].as_str().unwrap());
    let (status, bytes) = f
        .call(
            "GET",
            &format!("/api/v1/streams/web/{label}/{want}"),
            &[],
            None,
        )
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(sha(&bytes), want, "a stream is the bytes its sha256 names");
    assert_eq!(bytes.len() as u64, s["size"].as_u64().unwrap());
    assert_eq!(
        f.call(
            "GET",
            &format!("/api/v1/streams/web/{label}/{}", "0".repeat(64)),
            &[],
            None
        )
        .unwrap()
        .0,
        404
    );

    // Events first: 409 names the missing streams, and nothing is applied.
    let batch = json!([events[0]]).to_string().into_bytes();
    let post_batch = || {
        f.call(
            "POST",
            "/api/v1/restore/events/web/click",
            &[],
            Some(batch.clone()),
        )
    };
    let (status, body) = post_batch().unwrap();
    assert_eq!(status, 409);
    let missing: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        missing["missing_streams"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == want),
        "{missing}"
    );
    assert_eq!(f.json("GET", "/_fake/restored", None).1["event_posts"], 0);
    // Streams: a wrong hash 400, then 201, then 200.
    let post = |h: &str| {
        f.call(
            "POST",
            &format!("/api/v1/restore/streams/web/{label}"),
            &[("X-Sha256", h)],
            Some(bytes.clone()),
        )
        .unwrap()
        .0
    };
    assert_eq!(post(&"1".repeat(64)), 400);
    assert_eq!(post(want), 201);
    assert_eq!(post(want), 200);
    for other in &events[0]["streams"].as_array().unwrap()[1..] {
        let (l, h) = (
            other["label"].as_str().unwrap(),
            other["sha256"].as_str().unwrap(),
        );
        let (_, b) = f
            .call("GET", &format!("/api/v1/streams/web/{l}/{h}"), &[], None)
            .unwrap();
        f.call(
            "POST",
            &format!("/api/v1/restore/streams/web/{l}"),
            &[("X-Sha256", h)],
            Some(b),
        )
        .unwrap();
    }
    let (status, body) = post_batch().unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["accepted"],
        1
    );

    // An answer lost after applying: the client sees a dropped connection, the fake holds the batch twice
    // (which a resuming restore must not cause: the checkpoint is what prevents it).
    f.json("POST", "/_fake/fail", Some(json!({"method": "POST", "path_contains": "/restore/events/", "status": 0, "after": true})));
    assert!(post_batch().is_err());
    let restored = f.json("GET", "/_fake/restored", None).1;
    assert_eq!(
        restored["events"]["web/click"].as_array().unwrap().len(),
        2,
        "{restored}"
    );
    // A busy stream server: 503 once, then the bytes.
    f.json(
        "POST",
        "/_fake/fail",
        Some(json!({"method": "GET", "path_contains": "/streams/", "status": 503})),
    );
    let get_stream = || {
        f.call(
            "GET",
            &format!("/api/v1/streams/web/{label}/{want}"),
            &[],
            None,
        )
        .unwrap()
        .0
    };
    assert_eq!(get_stream(), 503);
    assert_eq!(get_stream(), 200);
}
