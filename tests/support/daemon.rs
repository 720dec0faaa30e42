//! Runs the real `pullwarden serve` binary against the real containerd, each daemon in
//! its own temp dir with its own sockets and state.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub listen: PathBuf,
    pub admin: PathBuf,
    pub config: PathBuf,
}

impl Daemon {
    /// The `[server]` section for a daemon in `dir` proxying to the harness's containerd.
    /// The periodic doctor (a canary image and its ImageStatus call every minute) is off,
    /// so no test sees calls or images it did not make.
    pub fn server_section(dir: &Path, upstream: &Path) -> String {
        format!(
            "[server]\nlisten = \"{l}\"\nupstream = \"{u}\"\nadmin = \"{a}\"\nmetrics = \"\"\nstate_dir = \"{s}\"\ndrain_timeout = \"5s\"\ndoctor_interval = \"0s\"\n",
            l = dir.join("cri.sock").display(),
            u = upstream.display(),
            a = dir.join("admin.sock").display(),
            s = dir.join("state").display(),
        )
    }

    /// Starts a daemon whose config is the server section plus `extra` TOML.
    pub fn start(extra: &str) -> Daemon {
        Daemon::start_with_upstream(&super::it_env().containerd_sock, extra)
    }

    pub fn start_with_upstream(upstream: &Path, extra: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        let registry = super::it_env_opt()
            .map(|e| e.registry.clone())
            .unwrap_or_default();
        let text = format!(
            "{}\n[registry]\nplain_http = [\"{registry}\"]\n\n{extra}",
            Daemon::server_section(dir.path(), upstream)
        );
        std::fs::write(&config, text).unwrap();
        let mut d = Daemon {
            listen: dir.path().join("cri.sock"),
            admin: dir.path().join("admin.sock"),
            config,
            dir,
            child: None,
        };
        d.spawn();
        d
    }

    pub fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("daemon.log")).unwrap();
        let child = Command::new(super::bin())
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("PULLWARDEN_LOG", "debug,h2=info,hyper=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            // Both sockets: the admin socket is bound just after the CRI one.
            if std::os::unix::net::UnixStream::connect(&self.listen).is_ok()
                && std::os::unix::net::UnixStream::connect(&self.admin).is_ok()
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("pullwarden exited early ({status}): {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "pullwarden did not bind {} in time: {}",
            self.listen.display(),
            self.log()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("pullwarden did not stop on SIGTERM: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(super::bin())
            .args(args)
            .env("PULLWARDEN_CONFIG", &self.config)
            .output()
            .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
