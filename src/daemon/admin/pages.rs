//! The admin page's HTML, rendered with maud. Every interactive element has a stable `data-testid`.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value as Json;

use super::Who;
use super::audit::Entry;
use crate::daemon::history::RunRecord;
use crate::daemon::{JobView, LoadError};

pub fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

pub fn duration(ms: Option<u64>) -> String {
    match ms {
        None => "—".into(),
        Some(ms) if ms < 1000 => format!("{ms} ms"),
        Some(ms) if ms < 120_000 => format!("{:.1} s", ms as f64 / 1000.0),
        Some(ms) => format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60),
    }
}

fn status_badge(status: &str) -> Markup {
    html! { span class={"badge " (status)} data-testid="status" { (status) } }
}

/// The frame around every page: navigation, the user and the logout button.
pub fn layout(title: &str, who: Option<&Who>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "rewind · " (title) }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                header {
                    a.brand href="/" data-testid="nav-home" { "rewind" }
                    @if let Some(w) = who {
                        nav {
                            a href="/" data-testid="nav-dashboard" { "Jobs" }
                            a href="/runs" data-testid="nav-runs" { "Runs" }
                            a href="/snapshots" data-testid="nav-snapshots" { "Snapshots" }
                            a href="/audit" data-testid="nav-audit" { "Audit log" }
                        }
                        span.user data-testid="user" { (w.session.user) " (" (w.session.role.as_str()) ")" }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(w.session.csrf);
                            button data-testid="logout" { "Log out" }
                        }
                    }
                }
                main { (content) }
            }
        }
    }
}

pub fn login(next: &str, login_token: &str, error: Option<&str>) -> Markup {
    layout(
        "log in",
        None,
        html! {
            h1 { "Log in" }
            @if let Some(e) = error { p.error data-testid="login-error" { (e) } }
            form.login method="post" action="/login" {
                input type="hidden" name="token" value=(login_token);
                input type="hidden" name="next" value=(next);
                label { "User " input name="user" autocomplete="username" required data-testid="login-user"; }
                label { "Password " input type="password" name="password" autocomplete="current-password" required data-testid="login-password"; }
                button data-testid="login-submit" { "Log in" }
            }
        },
    )
}

/// Small coloured squares for a job's latest runs, oldest first.
fn history_strip(runs: &[&RunRecord]) -> Markup {
    html! {
        span.strip data-testid="history" {
            @for r in runs.iter().rev() {
                a class={"sq " (r.status.as_str())} href={"/runs/" (r.id)} data-testid="history-run"
                    title={(r.status.as_str()) " · " (time(&r.started)) " · " (duration(r.duration_ms))} {}
            }
        }
    }
}

fn run_button(who: &Who, job: &str) -> Markup {
    html! {
        form.inline method="post" action={"/jobs/" (job) "/run"} {
            input type="hidden" name="csrf" value=(who.session.csrf);
            button data-testid={"run-now-" (job)} { "Run now" }
        }
    }
}

pub fn dashboard(
    who: &Who,
    jobs: &[JobView],
    errors: &[LoadError],
    restores: &[String],
    recent: &std::collections::HashMap<String, Vec<RunRecord>>,
) -> Markup {
    layout(
        "jobs",
        Some(who),
        html! {
            h1 { "Jobs" }
            @if !errors.is_empty() || jobs.iter().any(|j| j.error.is_some()) {
                section.errors data-testid="load-errors" {
                    h2 { "Load errors" }
                    ul {
                        @for e in errors { li { code { (e.error) } } }
                        @for j in jobs.iter().filter(|j| j.error.is_some()) {
                            li { (j.name) " (the last good version keeps running): " code { (j.error.as_deref().unwrap_or("")) } }
                        }
                    }
                }
            }
            table data-testid="jobs-table" {
                thead { tr { th { "Job" } th { "Script" } th { "Schedule" } th { "Next run" } th { "Last run" } th { "Duration" } th { "History" } th {} } }
                tbody {
                    @for j in jobs {
                        @let refs: Vec<&RunRecord> = recent.get(&j.name).map(|r| r.iter().collect()).unwrap_or_default();
                        tr data-testid={"job-" (j.name)} {
                            td { a href={"/jobs/" (j.name)} data-testid="job-link" { (j.name) } }
                            td { (j.script) }
                            td { code { (j.schedule) } @if let Some(tz) = &j.timezone { " " small { (tz) } } }
                            td { @if let Some(t) = &j.next_run { (time(t)) } @else { "—" } }
                            td {
                                @if let Some(id) = &j.running { a href={"/runs/" (id)} data-testid="last-run" { (status_badge("running")) } }
                                @else if let Some(r) = &j.last_run { a href={"/runs/" (r.id)} data-testid="last-run" { (status_badge(r.status.as_str())) } " " small { (time(&r.started)) } }
                                @else { "never" }
                            }
                            td { (duration(j.last_run.as_ref().and_then(|r| r.duration_ms))) }
                            td { (history_strip(&refs)) }
                            td {
                                @if who.operator() {
                                    @if restores.contains(&j.name) {
                                        a.button href="/snapshots" data-testid={"restore-" (j.name)} { "Restore…" }
                                    } @else { (run_button(who, &j.name)) }
                                }
                            }
                        }
                    }
                }
            }
            @if jobs.is_empty() { p { "No jobs: put NAME.yaml or NAME.lua files in the jobs directory." } }
        },
    )
}

pub fn runs_table(runs: &[&RunRecord]) -> Markup {
    html! {
        table data-testid="runs-table" {
            thead { tr { th { "Run" } th { "Job" } th { "Trigger" } th { "Status" } th { "Started" } th { "Duration" } th { "Error" } } }
            tbody {
                @for r in runs {
                    tr data-testid={"run-" (r.id)} {
                        td { a href={"/runs/" (r.id)} data-testid="open-run" { (r.id) } }
                        td { a href={"/jobs/" (r.job)} data-testid="open-job" { (r.job) } }
                        td { (r.trigger) }
                        td { (status_badge(r.status.as_str())) }
                        td { (time(&r.started)) }
                        td { (duration(r.duration_ms)) }
                        td.err { (r.error.as_deref().map(|e| e.lines().next().unwrap_or("")).unwrap_or("")) }
                    }
                }
            }
        }
    }
}

pub fn runs(who: &Who, runs: &[&RunRecord], jobs: &[String], job: &str, status: &str) -> Markup {
    let statuses = ["running", "done", "failed", "cancelled", "skipped"];
    layout(
        "runs",
        Some(who),
        html! {
            h1 { "Runs" }
            form.filters method="get" action="/runs" {
                label { "Job " select name="job" data-testid="filter-job" {
                    option value="" { "all" }
                    @for j in jobs { option value=(j) selected[j == job] { (j) } }
                } }
                label { "Status " select name="status" data-testid="filter-status" {
                    option value="" { "all" }
                    @for s in statuses { option value=(s) selected[s == status] { (s) } }
                } }
                button data-testid="filter-apply" { "Filter" }
            }
            (runs_table(runs))
            @if runs.is_empty() { p data-testid="no-runs" { "No runs match." } }
        },
    )
}

fn json_block(v: &Json) -> Markup {
    html! { pre.json { (serde_json::to_string_pretty(v).unwrap_or_default()) } }
}

pub struct RunView<'a> {
    pub run: &'a RunRecord,
    pub params: Vec<(String, String)>,
    pub log: String,
    pub log_bytes: u64,
}

pub fn run(who: &Who, v: RunView) -> Markup {
    let r = v.run;
    let running = r.status.as_str() == "running";
    layout(
        &r.id,
        Some(who),
        html! {
            h1 { "Run " code { (r.id) } }
            dl.facts {
                dt { "Job" } dd { a href={"/jobs/" (r.job)} data-testid="open-job" { (r.job) } }
                dt { "Trigger" } dd { (r.trigger) }
                dt { "Status" } dd data-testid="run-status" { (r.status.as_str()) }
                dt { "Started" } dd { (time(&r.started)) }
                dt { "Finished" } dd { @if let Some(f) = &r.finished { (time(f)) } @else { "—" } }
                dt { "Duration" } dd { (duration(r.duration_ms)) }
            }
            @if !v.params.is_empty() {
                h2 { "Params" }
                table.params data-testid="run-params" {
                    @for (k, val) in &v.params { tr { th { (k) } td { code { (val) } } } }
                }
            }
            @if !r.given.is_empty() {
                h2 { "Given to this run" }
                ul data-testid="run-given" { @for g in &r.given { li { code { (g) } } } }
            }
            @if let Some(e) = &r.error { h2 { "Error" } pre.error data-testid="run-error" { (e) } }
            @if let Some(res) = &r.result { h2 { "Result" } div data-testid="run-result" { (json_block(res)) } }
            h2 { "Log" }
            pre.log data-testid="run-log"
                data-events=[running.then(|| format!("/runs/{}/events?from={}", r.id, v.log_bytes))] {
                (v.log)
                @if !running { span.end { "— " (r.status.as_str()) } }
            }
            @if running {
                noscript { p { "The log follows the run live with JavaScript; without it, reload the page." } }
                script src="/static/live.js" {}
            }
        },
    )
}

pub fn job(
    who: &Who,
    j: &JobView,
    restore: bool,
    params: &[(String, String)],
    overrides: &[(String, String, String)],
    runs: &[&RunRecord],
) -> Markup {
    layout(
        &j.name,
        Some(who),
        html! {
            h1 { "Job " (j.name) }
            dl.facts {
                dt { "Script" } dd { (j.script) }
                dt { "File" } dd { code { (j.file.display()) } }
                dt { "Schedule" } dd { code { (j.schedule) } }
                dt { "Next run" } dd { @if let Some(t) = &j.next_run { (time(t)) } @else { "—" } }
            }
            @if let Some(e) = &j.error { p.error data-testid="job-error" { (e) } }
            @if !params.is_empty() {
                h2 { "Params" }
                table.params data-testid="job-params" { @for (k, v) in params { tr { th { (k) } td { code { (v) } } } } }
            }
            @if who.operator() && restore {
                p { "A restore starts from the " a href="/snapshots" data-testid="to-snapshots" { "Snapshots" } " page: it shows the plan and asks for the snapshot id." }
            } @else if who.operator() {
                h2 { "Run now" }
                form.run method="post" action={"/jobs/" (j.name) "/run"} data-testid="run-form" {
                    input type="hidden" name="csrf" value=(who.session.csrf);
                    @for (name, value, doc) in overrides {
                        label { (name) " " input name={"param." (name)} value=(value) data-testid={"override-" (name)}; small { (doc) } }
                    }
                    button data-testid={"run-now-" (j.name)} { "Run now" }
                }
            }
            h2 { "Recent runs" }
            (runs_table(runs))
        },
    )
}

pub fn audit(who: &Who, entries: &[Entry]) -> Markup {
    layout(
        "audit log",
        Some(who),
        html! {
            h1 { "Audit log" }
            table data-testid="audit-table" {
                thead { tr { th { "Time" } th { "User" } th { "Address" } th { "Action" } th { "Target" } th { "Detail" } } }
                tbody {
                    @for e in entries {
                        tr data-testid={"audit-" (e.action)} {
                            td { (time(&e.time)) } td { (e.user) } td { (e.addr) } td { (e.action) } td { (e.target) } td { (e.detail) }
                        }
                    }
                }
            }
        },
    )
}

/// A page for a refused or failed action.
pub fn problem(who: Option<&Who>, title: &str, message: &str) -> Markup {
    layout(
        title,
        who,
        html! {
            h1 { (title) }
            p.error data-testid="problem" { (message) }
            p { a href="/" data-testid="back" { "Back to the jobs" } }
        },
    )
}
