//! Schedules and hot reload: runs fire on time, edits (of the job or a module it requires) reload.

use super::*;
#[test]
fn fires_every_second_and_reloads_edits() {
    let (_dir, jobs, state) = setup();
    let job = jobs.join("greet.yaml");
    write(
        &job,
        "script: hello\nschedule: every 1s\nparams:\n  name: bob\n",
    );
    write(
        &jobs.join("bad.yaml"),
        "script: hello\nschedule: \"61 * * * *\"\n",
    );
    write(
        &jobs.join("nosuch.yaml"),
        "script: no-such-script\nschedule: every 1m\n",
    );
    write(
        &jobs.join("badparams.yaml"),
        "script: hello\nschedule: every 1m\nparams:\n  times: many\n",
    );
    let d = Daemon::start(&jobs, &state, &[], &[]);
    wait_for("two runs", Duration::from_secs(10), || {
        runs_of(&state, "greet", "done").len() >= 2
    });
    let r = runs_of(&state, "greet", "done");
    assert_eq!(greetings(&r[0]), "hello, bob");
    // Runs keep to the interval: consecutive scheduled times are at least 1 s apart (exactly, unless the
    // machine stalled), and each started within a second of its time.
    let t0 = chrono::DateTime::parse_from_rfc3339(r[0]["scheduled"].as_str().unwrap()).unwrap();
    let t1 = chrono::DateTime::parse_from_rfc3339(r[1]["scheduled"].as_str().unwrap()).unwrap();
    let gap = (t1 - t0).num_milliseconds();
    assert!(gap >= 1000, "{gap}");
    for run in &r {
        let s = chrono::DateTime::parse_from_rfc3339(run["started"].as_str().unwrap()).unwrap();
        let due = chrono::DateTime::parse_from_rfc3339(run["scheduled"].as_str().unwrap()).unwrap();
        assert!((s - due).num_milliseconds() < 1000, "{run}");
    }

    // Invalid jobs are not scheduled and `rewind jobs` shows why, with file:line.
    let out = text(&rewind(&["jobs", "--state", state.to_str().unwrap()]));
    assert!(out.contains("greet"), "{out}");
    assert!(
        out.contains("bad.yaml:2: bad cron schedule '61 * * * *'"),
        "{out}"
    );
    assert!(
        out.contains("nosuch.yaml:1: no script named 'no-such-script'"),
        "{out}"
    );
    assert!(
        out.contains("badparams.yaml:3: bad params for hello"),
        "{out}"
    );

    // An edit changes what the next run does.
    write(
        &job,
        "script: hello\nschedule: every 1s\nparams:\n  name: carol\n",
    );
    wait_for(
        "a run with the edited params",
        Duration::from_secs(10),
        || {
            runs_of(&state, "greet", "done")
                .iter()
                .any(|r| greetings(r) == "hello, carol")
        },
    );

    // A broken edit keeps the last good version running and is reported with file:line.
    write(
        &job,
        "script: hello\nschedule: every 1s\nparams:\n  name: [dave\n",
    );
    wait_for(
        "the load error in rewind jobs",
        Duration::from_secs(5),
        || text(&rewind(&["jobs", "--state", state.to_str().unwrap()])).contains("greet.yaml:5:"),
    );
    let before = runs_of(&state, "greet", "done").len();
    wait_for(
        "runs after the broken edit",
        Duration::from_secs(10),
        || runs_of(&state, "greet", "done").len() >= before + 2,
    );
    assert_eq!(
        greetings(runs_of(&state, "greet", "done").last().unwrap()),
        "hello, carol"
    );
    assert!(d.stderr().contains("greet.yaml:5:"), "{}", d.stderr());

    // Deleting the file unschedules the job; a new file schedules one.
    std::fs::remove_file(&job).unwrap();
    write(
        &jobs.join("other.yaml"),
        "script: hello\nschedule: \"* * * * * *\"\nparams: {name: eve}\n",
    );
    wait_for("the new job to run", Duration::from_secs(10), || {
        runs_of(&state, "other", "done")
            .iter()
            .any(|r| greetings(r) == "hello, eve")
    });
    // jobs.json is rewritten within 250 ms of a change.
    wait_for(
        "the job table to list only the new job",
        Duration::from_secs(5),
        || {
            let st = status(&state);
            let names: Vec<&str> = st["jobs"]
                .as_array()
                .map(|a| a.iter().filter_map(|j| j["name"].as_str()).collect())
                .unwrap_or_default();
            names == vec!["other"]
        },
    );
}

#[test]
fn lua_job_reloads_when_a_required_module_changes() {
    let (dir, jobs, state) = setup();
    let lib = dir.path().join("lib");
    write(&lib.join("stdlib/greeting.lua"), "return { word = 'hi' }\n");
    write(
        &jobs.join("mod.lua"),
        "local g = require('greeting')\nreturn {\n  schedule = 'every 1s',\n  run = function() return { word = g.word } end,\n}\n",
    );
    let _d = Daemon::start(&jobs, &state, &["--path", lib.to_str().unwrap()], &[]);
    wait_for("a run", Duration::from_secs(10), || {
        runs_of(&state, "mod", "done")
            .iter()
            .any(|r| r["result"]["word"] == "hi")
    });
    write(
        &lib.join("stdlib/greeting.lua"),
        "return { word = 'howdy' }\n",
    );
    wait_for(
        "a run with the edited module",
        Duration::from_secs(10),
        || {
            runs_of(&state, "mod", "done")
                .iter()
                .any(|r| r["result"]["word"] == "howdy")
        },
    );
    // A broken edit of the module: the job reports the load error and keeps running its last good
    // unit (script and modules together), not the broken module read from disk at the next run.
    write(&lib.join("stdlib/greeting.lua"), "return { word = \n");
    wait_for("the module's load error", Duration::from_secs(10), || {
        status(&state)["jobs"][0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("greeting.lua")
    });
    let broken_at = chrono::Utc::now().to_rfc3339();
    wait_for(
        "two runs of the last good unit after the broken edit",
        Duration::from_secs(10),
        || {
            runs(&state)
                .iter()
                .filter(|r| {
                    r["job"] == "mod" && r["started"].as_str().unwrap_or("") > broken_at.as_str()
                })
                .count()
                >= 2
        },
    );
    for r in runs(&state)
        .iter()
        .filter(|r| r["job"] == "mod" && r["started"].as_str().unwrap_or("") > broken_at.as_str())
    {
        assert_eq!(r["status"], "done", "{r}");
        assert_eq!(r["result"]["word"], "howdy", "{r}");
    }
    write(
        &lib.join("stdlib/greeting.lua"),
        "return { word = 'howdy' }\n",
    );
    // A Lua job with a bad schedule keeps the old version, error at the schedule's line.
    write(
        &jobs.join("mod.lua"),
        "local g = require('greeting')\nreturn {\n  schedule = 'every never',\n  run = function() return { word = g.word } end,\n}\n",
    );
    wait_for("the load error", Duration::from_secs(5), || {
        status(&state)["jobs"][0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("mod.lua:3: bad interval")
    });
}
