//! The live log: server-sent events that follow a run's log file while it runs. Events: `log` (whole
//! lines, secrets masked) and, when the run has ended, `end` with its status. A follower only reads the
//! file, so however many watch a run, the run itself does not wait for them.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{Shared, Who};
use crate::daemon::history;

/// How often a follower looks for new lines.
const POLL: Duration = Duration::from_millis(200);
/// The most one event carries, so a burst of output is sent in pieces.
const MAX_EVENT: usize = 64 * 1024;

#[derive(Deserialize, Default)]
pub struct EventsQuery {
    #[serde(default)]
    from: u64,
}

pub async fn events(
    State(admin): State<Shared>,
    Extension(_who): Extension<Who>,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Response {
    if !history::valid_id(&id) {
        return (StatusCode::BAD_REQUEST, "bad run id\n").into_response();
    }
    let path = {
        let s = admin.api.lock();
        if s.history.get(&id).is_none() {
            return (StatusCode::NOT_FOUND, "no such run\n").into_response();
        }
        s.history.log_path(&id)
    };
    let state = Follow {
        admin,
        id,
        path,
        file: None,
        offset: q.from,
        partial: Vec::new(),
        ended: false,
    };
    Sse::new(follow(state))
        .keep_alive(KeepAlive::default())
        .into_response()
}

struct Follow {
    admin: Shared,
    id: String,
    path: std::path::PathBuf,
    /// The log, open from the first poll that finds it; each poll reads on from where the last stopped.
    file: Option<tokio::fs::File>,
    offset: u64,
    /// Bytes after the last newline, held until the line is whole.
    partial: Vec<u8>,
    ended: bool,
}

impl Follow {
    fn status(&self) -> String {
        self.admin
            .api
            .lock()
            .history
            .get(&self.id)
            .map(|r| r.status.as_str().to_string())
            .unwrap_or_else(|| "unknown".into())
    }

    /// New bytes of the log since the last read, at most `MAX_EVENT`.
    async fn read_more(&mut self) -> Vec<u8> {
        if self.file.is_none() {
            let Ok(mut f) = tokio::fs::File::open(&self.path).await else {
                return Vec::new();
            };
            if f.seek(std::io::SeekFrom::Start(self.offset)).await.is_err() {
                return Vec::new();
            }
            self.file = Some(f);
        }
        let Some(f) = self.file.as_mut() else {
            return Vec::new();
        };
        let mut buf = Vec::new();
        let _ = (&mut *f).take(MAX_EVENT as u64).read_to_end(&mut buf).await;
        self.offset += buf.len() as u64;
        buf
    }
}

fn follow(state: Follow) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(state, |mut st| async move {
        if st.ended {
            return None;
        }
        loop {
            // The status is read before the file, so no line written before the end is missed.
            let status = st.status();
            let chunk = st.read_more().await;
            st.partial.extend_from_slice(&chunk);
            let finished = status != "running";
            let cut = if finished && chunk.len() < MAX_EVENT {
                st.partial.len()
            } else {
                st.partial
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map(|i| i + 1)
                    .unwrap_or(0)
            };
            if cut > 0 {
                let lines: Vec<u8> = st.partial.drain(..cut).collect();
                let text = crate::base::redact::redact(&String::from_utf8_lossy(&lines));
                let text = text.strip_suffix('\n').unwrap_or(&text).to_string();
                return Some((Ok(Event::default().event("log").data(text)), st));
            }
            if finished && chunk.is_empty() {
                st.ended = true;
                return Some((Ok(Event::default().event("end").data(status)), st));
            }
            if chunk.len() < MAX_EVENT {
                tokio::time::sleep(POLL).await;
            }
        }
    })
}
