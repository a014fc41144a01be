//! A real OpenSSH server on 127.0.0.1 for one test: throwaway host and client keys, a
//! client ssh_config that trusts exactly that host key, and a log at DEBUG1 level so a
//! test can count connections and sessions. A missing sshd fails the test loudly: CI
//! installs openssh-server (.ci/run).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const SSHD: &str = "/usr/sbin/sshd";

pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen (package openssh-client) must be installed");
    assert!(ok.success());
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sshd {
    pub fn start() -> Sshd {
        Sshd::with_max_sessions(64)
    }

    /// A server allowing `max` sessions per connection (sshd's default is 10).
    pub fn with_max_sessions(max: usize) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install openssh-server (apt-get install openssh-server); \
             the remote-node tests need a real SSH server"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        std::fs::create_dir_all(d.join("remote")).unwrap();
        // Privilege separation needs this directory when sshd runs as root.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = free_port();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPidFile none\nStrictModes no\n\
                 UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nMaxSessions {max}\n\
                 MaxStartups 200:30:400\nLogLevel DEBUG1\n\
                 SetEnv FLEETUP_REMOTE_DIR={d}/remote\n",
                d = d.display()
            ),
        )
        .unwrap();
        let host_key = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        let key: Vec<&str> = host_key.split_whitespace().take(2).collect();
        std::fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {}\n", key.join(" ")),
        )
        .unwrap();
        std::fs::write(d.join("empty_known_hosts"), "").unwrap();
        for (name, known) in [
            ("ssh_config", "known_hosts"),
            ("ssh_config_unknown", "empty_known_hosts"),
        ] {
            std::fs::write(
                d.join(name),
                format!(
                    "Host *\n  IdentityFile {d}/client_key\n  IdentitiesOnly yes\n  \
                     UserKnownHostsFile {d}/{known}\n  GlobalKnownHostsFile /dev/null\n",
                    d = d.display()
                ),
            )
            .unwrap();
        }
        let child = Command::new(SSHD)
            .args(["-D", "-f"])
            .arg(d.join("sshd_config"))
            .arg("-E")
            .arg(d.join("sshd.log"))
            .stdin(Stdio::null())
            .spawn()
            .expect("cannot start sshd");
        let s = Sshd { dir, port, child };
        let up = super::wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "sshd did not listen: {}", s.log());
        s
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The client configuration that trusts this server's host key.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("ssh_config")
    }

    /// A client configuration whose known_hosts is empty.
    pub fn config_unknown(&self) -> PathBuf {
        self.dir.path().join("ssh_config_unknown")
    }

    /// fleetup's work directory on this "host".
    pub fn remote_dir(&self) -> PathBuf {
        self.dir.path().join("remote")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Authenticated connections and opened sessions in the log so far.
    pub fn counts(&self) -> (usize, usize) {
        let log = self.log();
        (
            log.matches("Accepted publickey").count(),
            log.matches("ctype session").count(),
        )
    }

    /// Drops every connection by killing the per-connection server processes.
    pub fn cut_connections(&self) {
        let me = self.child.id();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid …
            let Some(after) = stat.rsplit_once(')').map(|(_, a)| a) else {
                continue;
            };
            let ppid: u32 = after
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            if ppid == me {
                let _ = Command::new("kill").arg("-9").arg(e.file_name()).status();
            }
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.cut_connections();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
