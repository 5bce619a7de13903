//! Log output on stderr (human or JSON lines), every registered secret masked, and the progress mode.

use std::io::{IsTerminal, Write};

use super::{Cli, LogFormat};

pub fn init(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let level = if cli.quiet {
        "warn"
    } else {
        ["info", "debug", "trace"][cli.verbose.min(2) as usize]
    };
    // rdkafka's BaseConsumer logs an ERROR on drop when `c:close()` already closed its queue (every
    // topic-archive run); client errors reach rewind through its own context instead, so that module
    // stays quiet.
    let filter = EnvFilter::try_from_env("REWIND_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!("{level},aws_config=warn,aws_smithy_runtime=warn,rdkafka=warn,rdkafka::consumer::base_consumer=off,hyper=warn,h2=warn,reqwest=warn,rustls=warn,mio=info,tokio=info,runtime=info,want=info,tokio_util=info"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingWriter::default);
    // RunLogLayer copies the events of each daemon run into that run's log file.
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let runs = rewind::daemon::history::RunLogLayer;
    match cli.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .finish()
            .with(runs)
            .init(),
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .compact()
            .finish()
            .with(runs)
            .init(),
    }
    let bar = std::io::stderr().is_terminal() && matches!(cli.log_format, LogFormat::Human);
    rewind::prims::progress::set_mode(bar, cli.quiet);
}

/// Writes log lines to stderr with every registered secret masked.
#[derive(Default)]
struct RedactingWriter {
    buf: Vec<u8>,
}

impl Write for RedactingWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingWriter {
    fn drop(&mut self) {
        let text = rewind::base::redact::redact(&String::from_utf8_lossy(&self.buf));
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}
