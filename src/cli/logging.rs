//! Log output on stderr (human or JSON lines), every registered secret masked, and the progress mode.

use std::io::{IsTerminal, Write};

use super::{Cli, LogFormat};

/// Modules kept quieter than the chosen level. rdkafka's BaseConsumer logs an ERROR on drop when
/// `c:close()` already closed its queue (every topic-archive run); client errors reach rewind through its
/// own context instead, so that module stays quiet.
const QUIETER: &str = "aws_config=warn,aws_smithy_runtime=warn,rdkafka=warn,rdkafka::consumer::base_consumer=off,hyper=warn,h2=warn,reqwest=warn,rustls=warn,mio=info,tokio=info,runtime=info,want=info,tokio_util=info";

pub fn init(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = if cli.quiet {
        "warn"
    } else {
        ["info", "debug", "trace"][cli.verbose.min(2) as usize]
    };
    let filter = EnvFilter::try_from_env("REWIND_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},{QUIETER}")));
    // A daemon run's log file keeps its info lines even when the console is quiet (-q): it is what
    // `rewind jobs log` and the admin page show.
    let run_level = if cli.verbose > 0 { level } else { "info" };
    let runs = rewind::daemon::history::RunLogLayer
        .with_filter(EnvFilter::new(format!("{run_level},{QUIETER}")));
    let fmt = tracing_subscriber::fmt::layer().with_writer(RedactingWriter::default);
    let registry = tracing_subscriber::registry().with(runs);
    match cli.log_format {
        LogFormat::Json => registry
            .with(fmt.json().flatten_event(true).with_filter(filter))
            .init(),
        LogFormat::Human => registry
            .with(
                fmt.with_ansi(std::io::stderr().is_terminal())
                    .compact()
                    .with_filter(filter),
            )
            .init(),
    }
    let bar = std::io::stderr().is_terminal() && matches!(cli.log_format, LogFormat::Human);
    rewind::prims::progress::set_mode(bar, cli.quiet);
    if matches!(cli.log_format, LogFormat::Json) {
        rewind::prims::progress::set_json();
    }
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
