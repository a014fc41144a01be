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
    /// The loopback addresses it listens on: each one a host of its own.
    pub addrs: Vec<String>,
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
    free_port_on("127.0.0.1")
}

/// A port free on `addr` now.
pub fn free_port_on(addr: &str) -> u16 {
    std::net::TcpListener::bind((addr, 0))
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
        Sshd::serve(max, &["127.0.0.1".to_owned()], false)
    }

    /// One server for several hosts: it listens on each of `addrs` (loopback addresses,
    /// at most 16, sshd's limit), and each address has a work directory of its own
    /// (`host_dir`), as distinct hosts do.
    pub fn hosts(addrs: &[String]) -> Sshd {
        assert!(addrs.len() <= 16, "sshd listens on at most 16 addresses");
        Sshd::serve(10, addrs, true)
    }

    fn serve(max: usize, addrs: &[String], per_host: bool) -> Sshd {
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
        let port = free_port_on(&addrs[0]);
        let mut config = format!(
            "Port {port}\nHostKey {d}/host_key\n\
             AuthorizedKeysFile {d}/authorized_keys\nPidFile none\nStrictModes no\n\
             UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nMaxSessions {max}\n\
             MaxStartups 200:30:400\nLogLevel DEBUG1\n",
            d = d.display()
        );
        for a in addrs {
            config.push_str(&format!("ListenAddress {a}\n"));
        }
        if !per_host {
            config.push_str(&format!(
                "SetEnv FLEETUP_REMOTE_DIR={}/remote\n",
                d.display()
            ));
        } else {
            for a in addrs {
                std::fs::create_dir_all(d.join("hosts").join(a)).unwrap();
                config.push_str(&format!(
                    "Match LocalAddress {a}\n  SetEnv FLEETUP_REMOTE_DIR={}/hosts/{a}\n",
                    d.display()
                ));
            }
        }
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let host_key = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        let key: Vec<&str> = host_key.split_whitespace().take(2).collect();
        let known: String = addrs
            .iter()
            .map(|a| format!("[{a}]:{port} {}\n", key.join(" ")))
            .collect();
        std::fs::write(d.join("known_hosts"), known).unwrap();
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
        let s = Sshd {
            dir,
            port,
            addrs: addrs.to_vec(),
            child,
        };
        let up = super::wait_until(Duration::from_secs(10), || {
            s.addrs
                .iter()
                .all(|a| std::net::TcpStream::connect((a.as_str(), port)).is_ok())
        });
        assert!(up, "sshd did not listen: {}", s.log());
        s
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.addrs[0], self.port)
    }

    /// The `ssh:` address of each host it serves.
    pub fn host_addrs(&self) -> Vec<String> {
        self.addrs
            .iter()
            .map(|a| format!("{a}:{}", self.port))
            .collect()
    }

    /// fleetup's work directory on host `addr` (served with [`Sshd::hosts`]).
    pub fn host_dir(&self, addr: &str) -> PathBuf {
        self.dir.path().join("hosts").join(addr)
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
