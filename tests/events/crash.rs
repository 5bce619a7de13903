//! kill -9 at random points (seeded: REWIND_TEST_SEED replays a run; REWIND_TEST_KILLS sets the trials,
//! 20 by default) during event-backup and during event-restore; after a rerun the store, then the target,
//! holds every event exactly once, in order per pair, and every stream.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::common::dispatcher::Fake;
use crate::common::process::{Killed, test_kills, test_seed};
use crate::restore::{PAIRS, assert_restored_exactly, assert_streams_first, backed_up};
use crate::world::{World, ids, referenced_streams, result};

/// How long a whole run takes (to pick kill points inside it).
fn timed(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

#[test]
fn kill_9_during_backup_then_a_rerun_stores_everything_exactly_once() {
    let w = World::start();
    w.seed(serde_json::json!({"pairs": [["web", "click"], ["web", "view"], ["app", "open"]], "events": 300,
                              "streams": 150, "max_size": 30000, "seed": 9}));
    let mut distinct = BTreeSet::new();
    let mut want = std::collections::BTreeMap::new();
    for pair in PAIRS.split(',') {
        let events = w.source_events(pair);
        distinct.extend(referenced_streams(pair, &events).0);
        want.insert(pair.to_string(), ids(&events));
    }
    let full = timed(|| {
        result(&w.backup("base", PAIRS, &["batch=50", "stream_workers=4"]));
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(test_seed("event-backup kills"));
    for trial in 0..test_kills(20) {
        let prefix = format!("k{trial}");
        let at = full.mul_f64(rng.random_range(0.05..1.0));
        let child = Killed(
            w.command(
                "event-backup",
                &w.backup_args(&prefix, PAIRS, &["batch=50", "stream_workers=4"]),
            )
            .spawn()
            .unwrap(),
        );
        std::thread::sleep(at);
        drop(child); // SIGKILL
        let out = w.backup(&prefix, PAIRS, &["batch=50", "stream_workers=4"]);
        result(&out);
        let stored = w.stored_events(&prefix);
        for (pair, ids_want) in &want {
            assert_eq!(
                &ids(&stored[pair]),
                ids_want,
                "trial {trial} (killed at {at:?}): {pair}"
            );
        }
        assert_eq!(
            w.stored_streams(&prefix),
            distinct,
            "trial {trial} (killed at {at:?}): streams"
        );
    }
}

#[test]
fn kill_9_during_restore_then_a_rerun_restores_everything_exactly_once() {
    let w = backed_up("rk", 300);
    let probe = Fake::start();
    let full = timed(|| {
        result(&w.restore(&probe, "rk", &[]));
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(test_seed("event-restore kills"));
    for trial in 0..test_kills(20) {
        let target = Fake::start();
        let at = full.mul_f64(rng.random_range(0.05..1.0));
        eprintln!("trial {trial}: kill -9 at {at:?}");
        let child = Killed(
            w.command("event-restore", &w.restore_args(&target, "rk", &[]))
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(at);
        drop(child);
        result(&w.restore(&target, "rk", &[]));
        assert_restored_exactly(&w, "rk", &target);
        assert_streams_first(&target);
    }
}
