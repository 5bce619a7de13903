//! Job files: `NAME.yaml` (a script, its params and a schedule) or `NAME.lua` (a script that also returns
//! `schedule`). Loading validates everything a run would need (schedule, script, params) and learns which
//! files the job depends on, so an edit to any of them reloads the job.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value as Json};

use super::schedule::Schedule;
use crate::host::params::ParamSpec;
use crate::host::search::{Origin, ScriptSource};
use crate::host::{Host, ModuleSet, loaded_modules, params, script, state_info};

#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnMissed {
    #[default]
    Skip,
    RunOnce,
}

/// What to do when a run fails or succeeds.
#[derive(Clone, Debug)]
pub enum Notify {
    /// Post to Slack with `rewind.notify.slack`, the webhook URL read from an environment variable.
    Slack {
        webhook_env: String,
        message: Option<String>,
    },
    /// Call the Lua job's `on_failure` / `on_success` function.
    Lua(&'static str),
}

#[derive(Clone, Debug)]
pub struct JobDef {
    pub name: String,
    pub file: PathBuf,
    pub schedule: Schedule,
    pub schedule_text: String,
    pub timezone: Option<String>,
    pub jitter: Option<Duration>,
    pub on_missed: OnMissed,
    pub on_failure: Option<Notify>,
    pub on_success: Option<Notify>,
    /// The script name (YAML jobs) or the job file's name (Lua jobs).
    pub script: String,
    /// The code the next run uses: a run in progress keeps its own copy.
    pub source: ScriptSource,
    pub params: Map<String, Json>,
    /// Files whose change reloads this job: the job file, the script file, modules it requires.
    pub deps: Vec<PathBuf>,
    /// The modules its script required when it loaded: runs use these until the job reloads cleanly.
    pub modules: ModuleSet,
    /// The params its script declares (the admin page hides the secret ones).
    pub param_specs: Vec<ParamSpec>,
    /// Params an operator may change for one run from the admin page.
    pub overrides: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlJob {
    script: String,
    schedule: String,
    #[serde(default)]
    params: Map<String, Json>,
    timezone: Option<String>,
    jitter: Option<String>,
    #[serde(default)]
    on_missed: OnMissed,
    on_failure: Option<YamlNotify>,
    on_success: Option<YamlNotify>,
    #[serde(default)]
    overrides: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlNotify {
    slack: SlackNotify,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlackNotify {
    webhook_env: String,
    message: Option<String>,
}

/// Whether a path in the jobs directory is a job file.
pub fn is_job_file(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    !name.starts_with('.')
        && !name.ends_with("_test.lua")
        && (name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".lua"))
}

pub fn job_name(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// The 1-based line of the first line starting with `key` (for errors found after parsing).
fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            let t = l.trim_start();
            t.starts_with(key) && t[key.len()..].trim_start().starts_with([':', '='])
        })
        .map(|i| i + 1)
        .unwrap_or(1)
}

fn parse_jitter(text: Option<&str>) -> Result<Option<Duration>, String> {
    text.map(|j| {
        crate::base::duration::parse_duration(j)
            .map(Duration::from_secs_f64)
            .map_err(|e| format!("bad jitter '{j}': {e}"))
    })
    .transpose()
}

/// Loads and validates one job file. Errors read `file:line: message`. Must run inside a tokio runtime.
pub fn load(host: &Host, file: &Path) -> Result<JobDef, String> {
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    if file.extension().is_some_and(|e| e == "lua") {
        load_lua(host, file, text)
    } else {
        load_yaml(host, file, &text)
    }
}

fn load_yaml(host: &Host, file: &Path, text: &str) -> Result<JobDef, String> {
    let shown = file.display().to_string();
    let job: YamlJob = serde_norway::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line()).unwrap_or(1);
        format!("{shown}:{line}: {e}")
    })?;
    let at = |key: &str, msg: String| format!("{shown}:{}: {msg}", line_of(text, key));
    let schedule = Schedule::parse(&job.schedule, job.timezone.as_deref()).map_err(|e| {
        if e.contains("timezone") {
            at("timezone", e)
        } else {
            at("schedule", e)
        }
    })?;
    let jitter = parse_jitter(job.jitter.as_deref()).map_err(|e| at("jitter", e))?;
    let Some(source) = host.search.find_script(&job.script) else {
        return Err(at(
            "script",
            format!(
                "no script named '{}' in the search path ({})",
                job.script,
                host.search.describe()
            ),
        ));
    };
    let checked = check_script(host, &source, &job.params, file).map_err(|e| {
        if e.starts_with("bad params") {
            at("params", e)
        } else {
            e
        }
    })?;
    check_overrides(&job.overrides, &checked.params).map_err(|e| at("overrides", e))?;
    let notify = |n: Option<YamlNotify>| {
        n.map(|n| Notify::Slack {
            webhook_env: n.slack.webhook_env,
            message: n.slack.message,
        })
    };
    Ok(JobDef {
        name: job_name(file),
        file: file.to_path_buf(),
        schedule,
        schedule_text: job.schedule,
        timezone: job.timezone,
        jitter,
        on_missed: job.on_missed,
        on_failure: notify(job.on_failure),
        on_success: notify(job.on_success),
        script: job.script,
        source,
        params: job.params,
        deps: checked.deps,
        modules: checked.modules,
        param_specs: checked.params,
        overrides: job.overrides,
    })
}

impl JobDef {
    /// A param's value as pages and run records show it: masked when the script declares the param
    /// secret or its name looks secret, and any registered secret masked inside it.
    pub fn shown(&self, key: &str, value: &Json) -> String {
        let secret = crate::base::redact::looks_secret(key)
            || self.param_specs.iter().any(|p| p.name == key && p.secret);
        if secret {
            crate::base::redact::MASK.to_string()
        } else {
            crate::base::redact::redact(&crate::base::values::display(value))
        }
    }
}

/// A job made on the spot for a script of the search path (the admin page's verify): the same checks
/// as a job file's, never scheduled, named after the script.
pub fn adhoc(host: &Host, script_name: &str, values: &Map<String, Json>) -> Result<JobDef, String> {
    let Some(source) = host.search.find_script(script_name) else {
        return Err(format!(
            "no script named '{script_name}' in the search path ({})",
            host.search.describe()
        ));
    };
    let origin = PathBuf::from(format!("<admin page: {script_name}>"));
    let checked = check_script(host, &source, values, &origin)?;
    Ok(JobDef {
        name: script_name.to_string(),
        file: origin,
        schedule: Schedule::Manual,
        schedule_text: "manual".into(),
        timezone: None,
        jitter: None,
        on_missed: OnMissed::Skip,
        on_failure: None,
        on_success: None,
        script: script_name.to_string(),
        source,
        params: values.clone(),
        deps: checked.deps,
        modules: checked.modules,
        param_specs: checked.params,
        overrides: Vec::new(),
    })
}

/// What loading a job's script found.
struct Checked {
    deps: Vec<PathBuf>,
    modules: ModuleSet,
    fields: LuaJobFields,
    params: Vec<ParamSpec>,
}

/// Overrides must name params the script declares, and not secret ones (the page would show them).
fn check_overrides(names: &[String], specs: &[ParamSpec]) -> Result<(), String> {
    for n in names {
        match specs.iter().find(|p| &p.name == n) {
            None => return Err(format!("overrides: the script has no param '{n}'")),
            Some(p) if p.secret => {
                return Err(format!(
                    "overrides: '{n}' is a secret param and cannot be overridden from the admin page"
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Loads the script on a fresh state and checks the params; returns the files it loaded.
fn check_script(
    host: &Host,
    source: &ScriptSource,
    values: &Map<String, Json>,
    job_file: &Path,
) -> Result<Checked, String> {
    let lua = host
        .new_state()
        .map_err(|e| format!("cannot create a Lua state: {e}"))?;
    let s = script::load(&lua, source)
        .map_err(|e| crate::base::errors::Report::from_lua(&e).message)?;
    if let Err(errs) = params::resolve(&s.params, &[], Some(values), &|k| std::env::var(k).ok()) {
        return Err(format!(
            "bad params for {}: {}",
            s.source.name,
            errs.join("; ")
        ));
    }
    let mut deps = vec![job_file.to_path_buf()];
    if let Origin::File(p) = &source.origin
        && p != job_file
    {
        deps.push(p.clone());
    }
    deps.extend(state_info(&lua).borrow().loaded_files.iter().cloned());
    let fields = (|| -> mlua::Result<LuaJobFields> {
        Ok(LuaJobFields {
            schedule: s.table.get("schedule")?,
            timezone: s.table.get("timezone")?,
            jitter: s.table.get("jitter")?,
            on_missed: s.table.get("on_missed")?,
            on_failure: matches!(s.table.get("on_failure")?, mlua::Value::Function(_)),
            on_success: matches!(s.table.get("on_success")?, mlua::Value::Function(_)),
            overrides: s
                .table
                .get::<Option<Vec<String>>>("overrides")?
                .unwrap_or_default(),
        })
    })()
    .map_err(|e| format!("{}: {e}", job_file.display()))?;
    Ok(Checked {
        deps,
        modules: loaded_modules(&lua),
        fields,
        params: s.params.clone(),
    })
}

struct LuaJobFields {
    schedule: Option<String>,
    timezone: Option<String>,
    jitter: Option<String>,
    on_missed: Option<String>,
    on_failure: bool,
    on_success: bool,
    overrides: Vec<String>,
}

fn load_lua(host: &Host, file: &Path, text: String) -> Result<JobDef, String> {
    let shown = file.display().to_string();
    let name = job_name(file);
    let source = ScriptSource {
        name: name.clone(),
        chunk_name: format!("@{shown}"),
        code: text.clone(),
        origin: Origin::File(file.to_path_buf()),
    };
    let checked = check_script(host, &source, &Map::new(), file).map_err(|e| {
        if e.starts_with("bad params") {
            format!("{shown}:{}: {e}", line_of(&text, "params"))
        } else {
            e
        }
    })?;
    let f = checked.fields;
    let at = |key: &str, msg: String| format!("{shown}:{}: {msg}", line_of(&text, key));
    let Some(sched_text) = f.schedule else {
        return Err(format!(
            "{shown}:1: a Lua job must return a table with schedule (a cron expression or 'every 10m') and run"
        ));
    };
    let schedule = Schedule::parse(&sched_text, f.timezone.as_deref()).map_err(|e| {
        if e.contains("timezone") {
            at("timezone", e)
        } else {
            at("schedule", e)
        }
    })?;
    let jitter = parse_jitter(f.jitter.as_deref()).map_err(|e| at("jitter", e))?;
    check_overrides(&f.overrides, &checked.params).map_err(|e| at("overrides", e))?;
    let on_missed = match f.on_missed.as_deref() {
        None | Some("skip") => OnMissed::Skip,
        Some("run_once") => OnMissed::RunOnce,
        Some(other) => {
            return Err(at(
                "on_missed",
                format!("on_missed must be skip or run_once, not '{other}'"),
            ));
        }
    };
    Ok(JobDef {
        name: name.clone(),
        file: file.to_path_buf(),
        schedule,
        schedule_text: sched_text,
        timezone: f.timezone,
        jitter,
        on_missed,
        on_failure: f.on_failure.then_some(Notify::Lua("on_failure")),
        on_success: f.on_success.then_some(Notify::Lua("on_success")),
        script: name,
        source,
        params: Map::new(),
        deps: checked.deps,
        modules: checked.modules,
        param_specs: checked.params,
        overrides: f.overrides,
    })
}
