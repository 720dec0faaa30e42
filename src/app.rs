//! Wiring: build the parts from the config, bind the sockets, tell systemd we are
//! ready, reload on SIGHUP, drain on SIGTERM.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tokio::signal::unix::{SignalKind, signal};

use crate::config::{Config, ConfigError};
use crate::cri::{self, BindError, Passthrough, Proxy, Upstream};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("CRI socket: {0}")]
    Bind(#[from] BindError),
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
}

/// The live configuration, replaced whole on reload.
pub struct LiveConfig {
    current: RwLock<Arc<Config>>,
    path: PathBuf,
}

impl LiveConfig {
    pub fn new(config: Config, path: PathBuf) -> LiveConfig {
        LiveConfig {
            current: RwLock::new(Arc::new(config)),
            path,
        }
    }

    pub fn get(&self) -> Arc<Config> {
        self.current
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Re-reads the file; an invalid new config is rejected and the old one kept.
    /// Socket paths and the upstream cannot change without a restart: such a change is
    /// refused whole, so the running daemon never disagrees with its config file.
    pub fn reload(&self) -> Result<Arc<Config>, ConfigError> {
        let new = Config::load(&self.path, false)?;
        let old = self.get();
        if new.server.listen != old.server.listen
            || new.server.upstream != old.server.upstream
            || new.server.admin != old.server.admin
        {
            return Err(ConfigError::Invalid {
                key: "server".into(),
                message: "listen, upstream and admin sockets change only with a restart".into(),
            });
        }
        let new = Arc::new(new);
        match self.current.write() {
            Ok(mut w) => *w = new.clone(),
            Err(poisoned) => *poisoned.into_inner() = new.clone(),
        }
        Ok(new)
    }
}

pub async fn run(config: Config, config_path: PathBuf) -> Result<(), AppError> {
    let live = Arc::new(LiveConfig::new(config, config_path));
    let cfg = live.get();
    let listener = cri::bind_socket(&cfg.server.listen, &cfg.server.socket_group)?;
    let upstream = Arc::new(Upstream::new(&cfg.server.upstream));
    let proxy = Proxy::new(upstream, Arc::new(Passthrough));

    let mut term = signal(SignalKind::terminate()).map_err(AppError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(AppError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(AppError::Signals)?;

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let reload_live = live.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => match reload_live.reload() {
                    Ok(_) => tracing::info!("configuration reloaded"),
                    Err(e) => tracing::error!(error = %e, "reload rejected; keeping the running configuration"),
                },
            }
        }
        let _ = stop_tx.send(());
    });

    tracing::info!(
        listen = %cfg.server.listen.display(),
        upstream = %cfg.server.upstream.display(),
        "pullwarden serving"
    );
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    cri::server::serve(
        listener,
        proxy,
        async {
            let _ = stop_rx.await;
        },
        cfg.server.drain_timeout,
    )
    .await;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    let _ = std::fs::remove_file(&cfg.server.listen);
    tracing::info!("stopped");
    Ok(())
}
