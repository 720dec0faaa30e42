//! `pullwarden serve`: load and validate the config before touching any socket, set up
//! logging, then run the daemon until SIGTERM/SIGINT.

use super::ConfigArg;
use crate::config::LogFormat;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
}

pub fn run(args: ServeArgs) -> anyhow::Result<i32> {
    let mut cfg = args.config.load()?;
    // Keys, trust roots and denylists are read now: a bad one exits 64 before any
    // socket exists, instead of failing every pull.
    let files = cfg.check_files()?;
    init_logging(cfg.server.log_format);
    for w in &files.warnings {
        tracing::warn!("{w}");
    }
    let path = args.config.path();
    // One async thread: the proxy's work per call is tiny and latency-bound, and
    // keeping both HTTP/2 connections of a call on one thread saves the cross-thread
    // wake-ups that dominate a loopback hop. Scans, store I/O and other heavy work run
    // on the blocking pool (spawn_blocking), never on this thread.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("pullwarden")
        .build()?;
    rt.block_on(crate::app::run(cfg, path))?;
    Ok(0)
}

/// Logs to stderr (journald under systemd): colour only on a terminal, and for
/// `log_format = "json"` one JSON object per line (see `crate::audit::JsonLines`).
fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PULLWARDEN_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,h2=warn,hyper=warn,tower=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(crate::audit::stderr_wants_colour())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .with_ansi(false)
            .event_format(crate::audit::JsonLines)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
