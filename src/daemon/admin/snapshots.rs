//! Snapshots on the admin page. The places shown are the (store, prefix) pairs the jobs name in their
//! params, and nothing else: a request for any other store or prefix is refused. A snapshot's page shows
//! its manifest, a verify button (a recorded run of `verify`) and, for every restore job of the same
//! place, a link to the restore (`restore.rs`).

use std::collections::BTreeMap;

use axum::extract::{Extension, Form, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value as Json};
use tokio::sync::oneshot;

use super::handlers::{Action, html};
use super::{Shared, Who, pages};
use crate::daemon::calls::{Call, Target};

/// A store and prefix some job writes to or restores from.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Place {
    /// The job's `store` param; empty: the default store.
    store: String,
    prefix: String,
}

#[derive(Default)]
pub(super) struct Jobs {
    backups: Vec<String>,
    pub restores: Vec<String>,
}

/// A restore job: its script restores (env-restore, druid-restore, restore-dir, td-ps-restore, or a
/// user's `*restore*` script) and takes `snapshot=`. The page starts it only through the plan and the
/// typed confirmation, never with a bare "Run now".
pub fn is_restore(def: &crate::daemon::jobs::JobDef) -> bool {
    def.script.contains("restore") && def.param_specs.iter().any(|p| p.name == "snapshot")
}

/// Every place the jobs name, with the jobs that back up to it and restore from it.
pub(super) fn places(admin: &Shared) -> BTreeMap<Place, Jobs> {
    let s = admin.api.lock();
    let mut out: BTreeMap<Place, Jobs> = BTreeMap::new();
    for j in s.jobs.values() {
        // The job's prefix, else the script's plain default (druid-backup/-restore: druid).
        let prefix = j.def.params.get("prefix").or_else(|| {
            j.def
                .param_specs
                .iter()
                .find(|p| p.name == "prefix")
                .and_then(|p| p.default.as_ref())
        });
        let Some(Json::String(prefix)) = prefix else {
            continue;
        };
        let store = match j.def.params.get("store") {
            Some(Json::String(s)) => s.clone(),
            _ => String::new(),
        };
        let e = out
            .entry(Place {
                store,
                prefix: prefix.clone(),
            })
            .or_default();
        if is_restore(&j.def) {
            e.restores.push(j.def.name.clone());
        } else {
            e.backups.push(j.def.name.clone());
        }
    }
    out
}

/// Runs a call on the daemon's Lua thread and waits for its answer.
pub(super) async fn call(
    admin: &Shared,
    target: Target,
    args: Vec<(String, String)>,
    record: bool,
) -> Result<Json, (u16, String)> {
    let (tx, rx) = oneshot::channel();
    let c = Call {
        target,
        args,
        record,
        reply: tx,
    };
    if admin.api.calls.send(c).is_err() {
        return Err((503, "the daemon is stopping".into()));
    }
    rx.await
        .unwrap_or_else(|_| Err((503, "the daemon is stopping".into())))
}

fn place_params(p: &Place) -> Map<String, Json> {
    let mut m = Map::new();
    m.insert("prefix".into(), Json::String(p.prefix.clone()));
    if !p.store.is_empty() {
        m.insert("store".into(), Json::String(p.store.clone()));
    }
    m
}

fn store_label(p: &Place) -> String {
    if p.store.is_empty() {
        "default store".into()
    } else {
        crate::base::redact::redact_url(&p.store)
    }
}

fn place_query(p: &Place) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("store", &p.store)
        .append_pair("prefix", &p.prefix)
        .finish()
}

/// A value for a table cell: null is empty.
pub(super) fn text(v: &Json) -> String {
    if v.is_null() {
        String::new()
    } else {
        crate::base::values::display(v)
    }
}

pub async fn list(State(admin): State<Shared>, Extension(who): Extension<Who>) -> Response {
    let places = places(&admin);
    let lookups = places.keys().map(|p| {
        let admin = admin.clone();
        let p = p.clone();
        async move {
            let target = Target::Script {
                name: "snapshots".into(),
                params: place_params(&p),
            };
            call(&admin, target, Vec::new(), false).await
        }
    });
    let results = futures::future::join_all(lookups).await;
    let body = html! {
        h1 { "Snapshots" }
        @if places.is_empty() { p { "No job names a store prefix (a `prefix` param): there is nothing to list." } }
        @for ((place, jobs), res) in places.iter().zip(results.iter()) {
            section.place data-testid={"place-" (place.prefix)} {
                h2 { code { (place.prefix) } " in " (store_label(place)) }
                p.jobs {
                    @if !jobs.backups.is_empty() { "Backed up by " (jobs.backups.join(", ")) ". " }
                    @if !jobs.restores.is_empty() { "Restored by " (jobs.restores.join(", ")) "." }
                }
                @match res {
                    Err((_, e)) => p.error data-testid="place-error" { (e) },
                    Ok(r) => (snapshot_table(place, r["snapshots"].as_array().map(Vec::as_slice).unwrap_or(&[]))),
                }
            }
        }
    };
    html(StatusCode::OK, pages::layout("snapshots", Some(&who), body))
}

fn snapshot_table(place: &Place, snaps: &[Json]) -> Markup {
    html! {
        table data-testid="snapshots-table" {
            thead { tr { th { "Snapshot" } th { "Started" } th { "Procedure" } th { "Target" } th { "Size" } th { "Objects" } th { "Tags" } th { "State" } } }
            tbody {
                @for s in snaps.iter().rev() {
                    @let id = text(&s["id"]);
                    @let complete = s["complete"].as_bool().unwrap_or(false);
                    tr data-testid={"snapshot-" (id)} class=[(!complete).then_some("incomplete")] {
                        td { @if complete { a href={"/snapshots/show?" (place_query(place)) "&id=" (id)} data-testid="open-snapshot" { (id) } } @else { (id) } }
                        td { (text(&s["started_at"])) }
                        td { (text(&s["procedure"])) }
                        td { (text(&s["target"])) }
                        td { (s["size"].as_u64().map(crate::base::units::human_bytes).unwrap_or_default()) }
                        td { (text(&s["objects"])) }
                        td { (tags_text(&s["tags"])) }
                        td { @if complete { "complete" } @else { span.error { (text(&s["note"])) } } }
                    }
                }
            }
        }
        @if snaps.is_empty() { p { "No snapshots yet." } }
    }
}

/// Tags as `key=value, ...` (a manifest holds a map; an empty one is `[]` once through Lua).
fn tags_text(v: &Json) -> String {
    match v {
        Json::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", text(v)))
            .collect::<Vec<_>>()
            .join(", "),
        Json::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(", "),
        _ => String::new(),
    }
}

#[derive(Deserialize)]
pub struct ShowQuery {
    #[serde(default)]
    store: String,
    prefix: String,
    id: String,
}

/// The place of a request, if a job names it.
fn known(admin: &Shared, store: &str, prefix: &str) -> Option<(Place, Jobs)> {
    let p = Place {
        store: store.into(),
        prefix: prefix.into(),
    };
    places(admin).remove(&p).map(|j| (p, j))
}

pub async fn show(
    State(admin): State<Shared>,
    Extension(who): Extension<Who>,
    Query(q): Query<ShowQuery>,
) -> Response {
    let Some((place, jobs)) = known(&admin, &q.store, &q.prefix) else {
        return html(
            StatusCode::NOT_FOUND,
            pages::problem(
                Some(&who),
                "Unknown place",
                "No job names that store and prefix.",
            ),
        );
    };
    let mut params = place_params(&place);
    params.insert("snapshot".into(), Json::String(q.id.clone()));
    let res = call(
        &admin,
        Target::Script {
            name: "snapshots".into(),
            params,
        },
        Vec::new(),
        false,
    )
    .await;
    let manifest = match res {
        Ok(r) => r["manifest"].clone(),
        Err((code, e)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return html(
                status,
                pages::problem(Some(&who), "Snapshot not readable", &e),
            );
        }
    };
    let mut shown = manifest.clone();
    crate::base::redact::redact_json(&mut shown);
    let body = html! {
        h1 { "Snapshot " code { (q.id) } }
        p { code { (place.prefix) } " in " (store_label(&place)) }
        @if who.operator() {
            form.inline method="post" action="/snapshots/verify" {
                input type="hidden" name="csrf" value=(who.session.csrf);
                input type="hidden" name="store" value=(place.store);
                input type="hidden" name="prefix" value=(place.prefix);
                input type="hidden" name="id" value=(q.id);
                button data-testid="verify" { "Verify" }
            }
            @for job in &jobs.restores {
                " "
                a.button href={"/restore?job=" (job) "&snapshot=" (q.id)} data-testid={"restore-with-" (job)} { "Restore with " (job) "…" }
            }
        }
        h2 { "Manifest" }
        pre.json data-testid="manifest" { (serde_json::to_string_pretty(&shown).unwrap_or_default()) }
    };
    html(StatusCode::OK, pages::layout(&q.id, Some(&who), body))
}

#[derive(Deserialize)]
pub struct VerifyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    store: String,
    prefix: String,
    id: String,
}

pub async fn verify(
    State(admin): State<Shared>,
    Extension(who): Extension<Who>,
    Form(f): Form<VerifyForm>,
) -> Response {
    let act = Action {
        admin: &admin,
        who: &who,
        refused: "verify-refused",
        target: format!("{}/{}", f.prefix, f.id),
    };
    if let Some(r) = act.check(&f.csrf, "viewers cannot start a verify") {
        return r;
    }
    let Some((place, _)) = known(&admin, &f.store, &f.prefix) else {
        return act.refuse(StatusCode::NOT_FOUND, "no job names that store and prefix");
    };
    let mut params = place_params(&place);
    params.insert("snapshot".into(), Json::String(f.id.clone()));
    let target = Target::Script {
        name: "verify".into(),
        params,
    };
    let res = call(&admin, target, Vec::new(), true).await;
    act.started("verify", "", res.map(|id| text(&id)))
}
