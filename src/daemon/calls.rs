//! Scripts the admin page asks the daemon to run: a job's script with changed params (a restore's
//! dry-run plan, a restore), or a bundled script outside any job (listing snapshots, verifying one).
//! Lua lives on the daemon's own thread, so the page sends a `Call` and awaits the reply.

use std::rc::Rc;

use serde_json::{Map, Value as Json};
use tokio::sync::oneshot;

use super::Daemon;
use super::jobs;
use crate::host::runner::{self, Outcome, RunRequest};

pub enum Target {
    /// A job, with its file's params.
    Job(String),
    /// A script from the search path, with these params, outside any job.
    Script {
        name: String,
        params: Map<String, Json>,
    },
}

pub struct Call {
    pub target: Target,
    /// key=value params on top of the job's or script's.
    pub args: Vec<(String, String)>,
    /// true: a recorded run, followed on its page (reply: the run id as a string); false: a query whose
    /// result is the reply, recorded nowhere.
    pub record: bool,
    pub reply: oneshot::Sender<Result<Json, (u16, String)>>,
}

impl Daemon {
    pub fn call(self: &Rc<Self>, c: Call) {
        let def = match &c.target {
            Target::Job(name) => match self.lock().jobs.get(name) {
                Some(j) => j.def.clone(),
                None => {
                    let _ = c.reply.send(Err((404, format!("no job named '{name}'"))));
                    return;
                }
            },
            Target::Script { name, params } => match jobs::adhoc(&self.host, name, params) {
                Ok(d) => d,
                Err(e) => {
                    let _ = c.reply.send(Err((400, e)));
                    return;
                }
            },
        };
        if c.record {
            let adhoc = matches!(c.target, Target::Script { .. });
            let r = self.fire_def(def, adhoc, "manual", Some((Map::new(), c.args)));
            let _ = c.reply.send(r.map(Json::String));
            return;
        }
        let this = self.clone();
        tokio::task::spawn_local(async move {
            let req = RunRequest {
                source: def.source.clone(),
                modules: Some(def.modules.clone()),
                cli_params: c.args,
                file_params: Some(def.params.clone()),
            };
            let out = runner::run(&this.host, req, this.cancel.clone().cancelled_owned()).await;
            let res = match out {
                Outcome::Done(v) => Ok(v),
                Outcome::Usage(m) => Err((400, m)),
                Outcome::Failed(r) => Err((500, r.message)),
                Outcome::Cancelled => Err((503, "the daemon is stopping".into())),
            };
            let _ = c.reply.send(res);
        });
    }
}
