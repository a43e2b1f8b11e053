//! Logging for every Sluice binary: tracing, human lines by default or JSON lines
//! (`log_format = json`), to stderr or to daily-rotated files in `log_dir`
//! (`<dir>/<program>.log.YYYY-MM-DD`). The level filter comes from the binary (`SLUICE_LOG`,
//! e.g. `info`, `sluice::access=warn,info`). Lines about a job carry `job=<id>`; access-log
//! lines (target `sluice::access`) carry the method, path, status, duration and `request_id`
//! (the `x-request-id` header, wumai's context id).

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use crate::config::Config;

/// Keeps the file writer flushing; hold it until the program ends.
#[derive(Debug)]
pub struct Guard {
    _flush: Option<WorkerGuard>,
}

/// Installs the global subscriber for `program` with the level `filter` (e.g. "info").
pub fn init(config: &Config, program: &str, filter: &str) -> Guard {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = match &config.log_dir {
        Some(dir) => {
            let (w, g) = tracing_appender::non_blocking(tracing_appender::rolling::daily(
                dir,
                format!("{program}.log"),
            ));
            (
                tracing_subscriber::fmt::writer::BoxMakeWriter::new(w),
                Some(g),
            )
        }
        None => (
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
            None,
        ),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // Colour only for a person at a terminal: never in files, pipes or supervisord's logs.
        .with_ansi(
            config.log_dir.is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        );
    let _ = if config.log_format == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    Guard { _flush: guard }
}
