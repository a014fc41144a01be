//! Remote fleets in their real shape, one node per host, against honest baselines
//! measured in the same run, each side first in turn:
//!
//! - 50 and 200 distinct hosts: loopback addresses 127.0.0.2 … (one OpenSSH server per
//!   16 addresses, sshd's limit), each address a host with its own work directory;
//! - a 1 MB, 20-file package, `max_parallel: 10`, no health wait, no hook; the repository
//!   (and the mirror's index) lists every version for 16 platforms side by side, as EMQX
//!   publishes them (the 15 the hosts do not run are small stand-ins never sent);
//! - the upgrade loop: `xargs -P10` of one `ssh` per host streaming the package into
//!   `unzip` and switching `current` (what a careful shell script does);
//! - the floor: `xargs -P10` of `ssh HOST true` (a handshake and one session per host);
//! - for 200 hosts with the default preflight (every store read before any host
//!   changes): a read loop (`xargs -P10 ssh HOST cat RELEASES`) and then the upgrade loop.
//!
//! Each fleetup run upgrades every node one patch further (4.4.16, 4.4.17, …), so every
//! run sends a new package to every host, as a real upgrade does. The first run at 50
//! hosts is "first contact": it also copies fleetup's agent to every host. Also printed:
//! fleetup's own peak memory (its `ssh` children not counted) and the most `ssh`
//! processes alive at once.
//!
//! Targets: 50 hosts within 1.25× of the upgrade loop; 200 hosts within 1.25× of the
//! upgrade loop with `preflight: wave`, of the read loop + upgrade loop by default;
//! `ssh` processes ≤ max_connections + max_parallel.
//!
//! With `FLEETUP_BENCH_ANSIBLE=1`, the 50-host size is also measured against Ansible over
//! SSH: ansible-core installed into a throwaway virtualenv (PyPI), forks 10, pipelining
//! on, ControlPersist, the same copy, unpack and link switch (one run: it takes minutes).
//!
//! At 50 hosts also, packages from a mirror: a ~20 MB package served over HTTP by a real
//! `python3 -m http.server` on 127.0.0.1 (with its `SHA256SUMS`), every host downloading
//! it itself (`repository_via: host`) against the controller downloading it once and
//! sending it to every host over SSH (`repository_via: controller`): wall time and the
//! bytes fleetup itself wrote (`wchar` of /proc/PID/io: its ssh pipes, journal, cache).
//! `FLEETUP_BENCH_MIRROR=0` leaves it out.
//!
//! With `FLEETUP_BENCH_BEFORE=PATH` (a fleetup binary of an earlier commit, built with
//! `--release`), the 50-host size also applies with that build beside this one, the
//! same plan to the same hosts, one patch further per run, taking turns going first
//! (`FLEETUP_BENCH_BEFORE_LABEL` names it in the table). Each build's agent is copied to
//! the hosts once, before the measured runs.
//!
//! Run: `cargo bench --bench remote` (needs /usr/sbin/sshd, ssh, bash, xargs, unzip).
//! `FLEETUP_BENCH_HOSTS=50` measures one size; `FLEETUP_BENCH_RUNS` sets the runs per
//! side (default 6, an even number).

mod common;
#[path = "../tests/common/sshd.rs"]
#[allow(dead_code)]
mod sshd;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Polls `cond` until it holds or `limit` passes (used by the sshd helper).
fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// One host: its address, its sshd's port, and where its node's store is.
struct Host {
    addr: String,
    port: u16,
}

/// `n` hosts on loopback, their servers, and one client configuration for all of them.
struct Hosts {
    servers: Vec<sshd::Sshd>,
    hosts: Vec<Host>,
    config: PathBuf,
}

fn start_hosts(dir: &Path, n: usize) -> Hosts {
    let addrs: Vec<String> = (0..n).map(|i| format!("127.0.0.{}", i + 2)).collect();
    let servers: Vec<sshd::Sshd> = addrs.chunks(16).map(sshd::Sshd::hosts).collect();
    // One client key for every server, and every server's host key known.
    let key = servers[0].dir.path().join("client_key");
    let public = std::fs::read(servers[0].dir.path().join("client_key.pub")).unwrap();
    let mut known = String::new();
    for s in &servers {
        std::fs::write(s.dir.path().join("authorized_keys"), &public).unwrap();
        known.push_str(&std::fs::read_to_string(s.dir.path().join("known_hosts")).unwrap());
    }
    std::fs::write(dir.join("known_hosts"), known).unwrap();
    let config = dir.join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  \
             GlobalKnownHostsFile /dev/null\n  BatchMode yes\n",
            key.display(),
            dir.join("known_hosts").display()
        ),
    )
    .unwrap();
    let hosts = servers
        .iter()
        .flat_map(|s| {
            s.addrs.iter().map(|a| Host {
                addr: a.clone(),
                port: s.port,
            })
        })
        .collect();
    Hosts {
        servers,
        hosts,
        config,
    }
}

/// What one measured command did: its wall time, its own peak memory, the most `ssh`
/// processes alive at once while it ran.
struct Measured {
    wall: Duration,
    peak_kb: i64,
    most_ssh: usize,
}

/// `ssh` processes alive on the machine now (only the measured command starts any).
fn ssh_alive() -> usize {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "ssh")
                })
                .count()
        })
        .unwrap_or(0)
}

// The child is reaped by `wait4` below, which also gives its rusage.
#[allow(clippy::zombie_processes)]
fn measure(mut c: Command) -> Measured {
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let sampler = std::thread::spawn(move || {
        let mut most = 0;
        while !s2.load(Ordering::SeqCst) {
            most = most.max(ssh_alive());
            std::thread::sleep(Duration::from_millis(10));
        }
        most
    });
    let err = tempfile::NamedTempFile::new().unwrap();
    let start = Instant::now();
    let child = c
        .stdout(Stdio::null())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    stop.store(true, Ordering::SeqCst);
    let most_ssh = sampler.join().unwrap();
    assert!(
        pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{c:?} failed: {}",
        std::fs::read_to_string(err.path()).unwrap_or_default()
    );
    Measured {
        wall,
        peak_kb: usage.ru_maxrss,
        most_ssh,
    }
}

fn bash(script: &str) -> Command {
    let mut c = Command::new("bash");
    c.arg("-c").arg(script);
    c
}

/// The fleet: node i on host i, its store under `dir/fleet/h<i>`, on 4.4.15.
fn fleet(dir: &Path, h: &Hosts) -> Vec<PathBuf> {
    let repo = dir.join("repo");
    (0..h.hosts.len())
        .map(|i| {
            let root = dir.join("fleet").join(format!("h{i}"));
            common::node_on_4_4_15(&root, &repo);
            root
        })
        .collect()
}

/// A plan taking every node to `to`, with `rollout` lines added.
fn plan(dir: &Path, h: &Hosts, roots: &[PathBuf], to: &str, rollout: &str) -> PathBuf {
    let mut nodes = String::new();
    for (i, (host, root)) in h.hosts.iter().zip(roots).enumerate() {
        nodes.push_str(&format!(
            "  - {{ name: h{i}, ssh: \"{}:{}\", root: {} }}\n",
            host.addr,
            host.port,
            root.display()
        ));
    }
    let p = dir.join(format!("plan-{to}.yaml"));
    std::fs::write(
        &p,
        format!(
            "plan: 1\nname: hosts\nproduct: emqx\nrepository: ./repo\nto: {to}\nstate: ./state\n\
             ssh_config: {}\nrollout:\n  max_parallel: 10\n{rollout}nodes:\n{nodes}",
            h.config.display()
        ),
    )
    .unwrap();
    p
}

/// `hosts.txt` (`ADDR PORT ROOT` per line) for the shell baselines.
fn host_list(dir: &Path, h: &Hosts, roots: &[PathBuf]) -> PathBuf {
    let list = dir.join("hosts.txt");
    let text: String = h
        .hosts
        .iter()
        .zip(roots)
        .map(|(host, root)| format!("{} {} {}\n", host.addr, host.port, root.display()))
        .collect();
    std::fs::write(&list, text).unwrap();
    list
}

/// The upgrade loop: per host one ssh that streams the package into unzip and switches
/// `current` (in the baseline's own directory beside the node's store).
fn upgrade_loop(dir: &Path, h: &Hosts, list: &Path, pkg: &Path, version: &str) -> String {
    let node_sh = dir.join("node.sh");
    std::fs::write(
        &node_sh,
        format!(
            "#!/bin/sh\nb=\"$3-shell\"; ssh -F {cfg} -p \"$2\" \"$1\" \
             \"mkdir -p $b/releases && cat > $b/releases/p-{version}.zip && unzip -q $b/releases/p-{version}.zip -d $b/releases/{version} \
             && ln -sfn releases/{version} $b/current.tmp && mv -T $b/current.tmp $b/current\" < {pkg}\n",
            cfg = h.config.display(),
            pkg = pkg.display(),
        ),
    )
    .unwrap();
    format!(
        "xargs -P10 -L1 sh {} < {}",
        node_sh.display(),
        list.display()
    )
}

fn floor(h: &Hosts, list: &Path) -> String {
    format!(
        "xargs -P10 -L1 sh -c 'ssh -F {} -p \"$1\" \"$0\" true' < {}",
        h.config.display(),
        list.display()
    )
}

fn read_loop(h: &Hosts, list: &Path) -> String {
    format!(
        "xargs -P10 -L1 sh -c 'ssh -F {} -p \"$1\" \"$0\" cat \"$2/releases/RELEASES\" >/dev/null' < {}",
        h.config.display(),
        list.display()
    )
}

/// Runs `a` and `b` alternately, `runs` times each, each first in turn: their wall
/// times in seconds, and a's measurements.
fn pair(
    runs: usize,
    a: impl FnMut(usize) -> Measured,
    b: impl FnMut(usize) -> Measured,
) -> (Vec<f64>, Vec<f64>, Vec<Measured>) {
    let (ma, mb) = common::pair(runs, a, b);
    let secs = |v: &[Measured]| v.iter().map(|m| m.wall.as_secs_f64()).collect::<Vec<f64>>();
    (secs(&ma), secs(&mb), ma)
}

/// Prints a measurement and its row of the table: `hosts`, what was run, the baseline.
fn report(
    hosts: usize,
    what: &str,
    baseline: &str,
    f: &[f64],
    b: &[f64],
    m: &[Measured],
    target: f64,
) {
    let peak = m.iter().map(|m| m.peak_kb).max().unwrap_or(0) as f64 / 1024.0;
    let most = m.iter().map(|m| m.most_ssh).max().unwrap_or(0);
    println!(
        "  {what}: fleetup {} s, baseline {} s, ratio {} (target <= {target:.2}); \
         fleetup peak {peak:.1} MB, most ssh alive {most}",
        common::spread(f, 1.0, 2),
        common::spread(b, 1.0, 2),
        common::paired_ratios(f, b),
    );
    common::row([
        &format!(
            "`apply` to {hosts} remote nodes on {hosts} distinct hosts (1 MB, 20 files; max_parallel 10; no health): {what}"
        ),
        &format!(
            "{} s; peak {peak:.1} MB, at most {most} `ssh` alive",
            common::spread(f, 1.0, 2)
        ),
        &format!("{baseline} {} s", common::spread(b, 1.0, 2)),
        &common::paired_ratios(f, b),
        &format!("≤ {target}"),
    ]);
}

/// The same upgrade by an Ansible playbook over SSH: ansible-core in a throwaway
/// virtualenv, forks 10, pipelining, ControlPersist. Its wall time in seconds.
fn ansible(dir: &Path, h: &Hosts, list: &Path, pkg: &Path) -> f64 {
    let venv = dir.join("venv");
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .unwrap()
        .success()
        && Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "ansible-core"])
            .status()
            .unwrap()
            .success();
    assert!(ok, "cannot install ansible-core into a virtualenv");
    let python = venv.join("bin/python");
    let hosts: String = std::fs::read_to_string(list)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let w: Vec<&str> = l.split(' ').collect();
            format!(
                "    h{i}: {{ ansible_host: {}, ansible_port: {}, root: \"{}-ansible\" }}\n",
                w[0], w[1], w[2]
            )
        })
        .collect();
    std::fs::write(
        dir.join("inventory.yaml"),
        format!(
            "all:\n  vars:\n    ansible_user: root\n    ansible_python_interpreter: {}\n  hosts:\n{hosts}",
            python.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("ansible.cfg"),
        format!(
            "[defaults]\nforks = 10\nhost_key_checking = True\n[ssh_connection]\npipelining = True\n\
             ssh_args = -F {} -o ControlMaster=auto -o ControlPersist=60s\n",
            h.config.display()
        ),
    )
    .unwrap();
    let name = pkg.file_name().unwrap().to_string_lossy();
    std::fs::write(
        dir.join("playbook.yaml"),
        format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n\
             \x20   - file: {{ path: \"{{{{ root }}}}/releases/4.4.99\", state: directory }}\n\
             \x20   - copy: {{ src: \"{pkg}\", dest: \"{{{{ root }}}}/releases/\" }}\n\
             \x20   - unarchive: {{ src: \"{{{{ root }}}}/releases/{name}\", dest: \"{{{{ root }}}}/releases/4.4.99\", remote_src: true }}\n\
             \x20   - file: {{ src: \"releases/4.4.99\", dest: \"{{{{ root }}}}/current\", state: link, force: true }}\n",
            pkg = pkg.display()
        ),
    )
    .unwrap();
    let mut c = Command::new(venv.join("bin/ansible-playbook"));
    c.current_dir(dir)
        .env("ANSIBLE_CONFIG", dir.join("ansible.cfg"))
        .args(["-i", "inventory.yaml", "playbook.yaml"]);
    let m = measure(c);
    let first = std::fs::read_to_string(list).unwrap();
    let root = first.lines().next().unwrap().split(' ').nth(2).unwrap();
    assert_eq!(
        std::fs::read_link(format!("{root}-ansible/current")).unwrap(),
        Path::new("releases/4.4.99")
    );
    m.wall.as_secs_f64()
}

/// Wall time of `c` and the bytes it wrote (its last `wchar` seen before it ended).
// The child is reaped by `wait` below.
fn measure_writes(mut c: Command) -> (f64, u64) {
    let err = tempfile::NamedTempFile::new().unwrap();
    let start = Instant::now();
    let mut child = c
        .stdout(Stdio::null())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap();
    let io = format!("/proc/{}/io", child.id());
    let mut wrote = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&io)
            && let Some(v) = text
                .lines()
                .find_map(|l| l.strip_prefix("wchar: "))
                .and_then(|v| v.trim().parse().ok())
        {
            wrote = v;
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let wall = start.elapsed().as_secs_f64();
    assert!(
        status.success(),
        "{c:?} failed: {}",
        std::fs::read_to_string(err.path()).unwrap_or_default()
    );
    (wall, wrote)
}

/// Hosts downloading a ~20 MB package from a loopback mirror themselves, against the
/// controller relaying it: each run one patch further, for both sides.
fn mirror(dir: &Path, h: &Hosts, roots: &[PathBuf], runs: usize, first: usize) {
    let served = dir.join("mirror");
    std::fs::create_dir_all(&served).unwrap();
    let versions: Vec<String> = (0..2 * runs)
        .map(|i| format!("4.4.{}", first + i))
        .collect();
    let mut size = 0;
    for v in &versions {
        let p = common::package(&served, v, 20, 2_300_000);
        size = std::fs::metadata(&p).unwrap().len();
    }
    // Every platform's packages are listed (`common::package` writes them beside ours).
    let ok = Command::new("bash")
        .arg("-c")
        .arg("sha256sum *.zip > SHA256SUMS")
        .current_dir(&served)
        .status()
        .unwrap();
    assert!(ok.success());
    let port = sshd::free_port();
    let mut server = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(&served)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    let n = h.hosts.len();
    let mb = size as f64 / 1e6;
    println!("  mirror: a {mb:.1} MB package on python3 http.server, {n} hosts");
    let cache = dir.join("cache");
    let next = std::cell::Cell::new(0);
    let run = |via: &str| {
        let v = &versions[next.get()];
        next.set(next.get() + 1);
        let p = plan(dir, h, roots, v, "");
        let text = std::fs::read_to_string(&p).unwrap().replace(
            "repository: ./repo\n",
            &format!("repository: \"http://127.0.0.1:{port}/\"\nrepository_via: {via}\n"),
        );
        std::fs::write(&p, text).unwrap();
        let mut c = apply(&p);
        c.env("FLEETUP_CACHE_DIR", &cache);
        measure_writes(c)
    };
    let (direct, relay) = common::pair(runs, |_| run("host"), |_| run("controller"));
    let wall = |v: &[(f64, u64)]| v.iter().map(|x| x.0).collect::<Vec<f64>>();
    let mbs = |v: &[(f64, u64)]| v.iter().map(|x| x.1 as f64 / 1e6).collect::<Vec<f64>>();
    let (dw, rw) = (wall(&direct), wall(&relay));
    let (db, rb) = (mbs(&direct), mbs(&relay));
    println!(
        "  hosts fetch: {} s, fleetup wrote {} MB; controller relays: {} s, wrote {} MB; time ratio {}",
        common::spread(&dw, 1.0, 2),
        common::spread(&db, 1.0, 2),
        common::spread(&rw, 1.0, 2),
        common::spread(&rb, 1.0, 2),
        common::paired_ratios(&dw, &rw)
    );
    common::row([
        &format!(
            "`apply` of a {mb:.0} MB package from an HTTP mirror (python3 http.server on loopback) to {n} hosts, each host downloading it (`repository_via: host`)"
        ),
        &format!(
            "{} s; fleetup wrote {} MB",
            common::spread(&dw, 1.0, 2),
            common::spread(&db, 1.0, 2)
        ),
        &format!(
            "the controller downloading it once and sending it over SSH (`repository_via: controller`): {} s; fleetup wrote {} MB",
            common::spread(&rw, 1.0, 2),
            common::spread(&rb, 1.0, 2)
        ),
        &common::paired_ratios(&dw, &rw),
        "controller bytes ≪ relay's",
    ]);
    let _ = server.kill();
    let _ = server.wait();
    // Every node ends on the last release.
    let last = &versions[next.get() - 1];
    for root in roots {
        assert_eq!(
            std::fs::read_link(root.join("permanent")).unwrap(),
            Path::new("releases").join(last)
        );
    }
}

fn apply(plan: &Path) -> Command {
    apply_with(Path::new(env!("CARGO_BIN_EXE_fleetup")), plan)
}

fn apply_with(bin: &Path, plan: &Path) -> Command {
    let mut c = Command::new(bin);
    c.arg("apply").arg(plan).arg("--yes");
    c
}

fn size(n: usize, runs: usize) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let before = std::env::var("FLEETUP_BENCH_BEFORE")
        .ok()
        .filter(|_| n <= 64);
    // Versions for the runs of this build against the earlier one, when it is measured.
    let extra = if before.is_some() { 2 * runs + 1 } else { 0 };
    let versions: Vec<String> = (15..=16 + 3 * runs + extra)
        .map(|p| format!("4.4.{p}"))
        .collect();
    let pkgs: Vec<PathBuf> = versions
        .iter()
        .map(|v| common::package(&repo, v, 20, 50_000))
        .collect();
    let h = start_hosts(dir, n);
    let roots = fleet(dir, &h);
    let list = host_list(dir, &h, &roots);
    println!(
        "{n} distinct hosts ({} sshd), one node each, 1 MB package, max_parallel 10, {runs} runs a side",
        h.servers.len()
    );
    // Index into versions: the release the next run goes to.
    let next = std::cell::Cell::new(1);
    let version = || {
        let v = next.get();
        next.set(v + 1);
        v
    };
    // The baseline unpacks into a directory of its own each run.
    let shell_v = std::cell::Cell::new(100);
    let shell_dir = || {
        shell_v.set(shell_v.get() + 1);
        format!("9.9.{}", shell_v.get())
    };
    let loop_run = |_: usize| measure(bash(&upgrade_loop(dir, &h, &list, &pkgs[1], &shell_dir())));

    // First contact: fleetup copies its agent to every host (once, not paired).
    if n <= 50 {
        let v = version();
        let m = measure(apply(&plan(dir, &h, &roots, &versions[v], "")));
        let b = loop_run(0);
        println!(
            "  first contact (copies the agent too): fleetup {:.2} s, upgrade loop {:.2} s, ratio {:.2}",
            m.wall.as_secs_f64(),
            b.wall.as_secs_f64(),
            m.wall.as_secs_f64() / b.wall.as_secs_f64()
        );
        common::row([
            &format!(
                "`apply` to {n} remote nodes, first contact: the agent is copied to every host too (one run: it happens once)"
            ),
            &format!("{:.2} s", m.wall.as_secs_f64()),
            &format!("the upgrade loop {:.2} s", b.wall.as_secs_f64()),
            &format!("{:.2}", m.wall.as_secs_f64() / b.wall.as_secs_f64()),
            "",
        ]);
    } else {
        // Warm the hosts' caches so that every measured run is alike.
        let v = version();
        measure(apply(&plan(dir, &h, &roots, &versions[v], "")));
    }

    let floor_t: Vec<f64> = (0..runs)
        .map(|_| measure(bash(&floor(&h, &list))).wall.as_secs_f64())
        .collect();
    println!(
        "  the floor, xargs -P10 ssh HOST true: {} s",
        common::spread(&floor_t, 1.0, 2)
    );
    common::row([
        &format!(
            "the floor for {n} hosts: `xargs -P10 ssh HOST true` (a handshake and a login per host)"
        ),
        "",
        &format!("{} s", common::spread(&floor_t, 1.0, 2)),
        "",
        "",
    ]);

    let mut default_run = |_k: usize| {
        let v = version();
        measure(apply(&plan(dir, &h, &roots, &versions[v], "")))
    };
    if n <= 64 {
        let (f, b, m) = pair(runs, &mut default_run, loop_run);
        report(
            n,
            "default preflight",
            "upgrade loop (`xargs -P10` of one `ssh` per host streaming the package into `unzip`, link switch)",
            &f,
            &b,
            &m,
            1.25,
        );
        if std::env::var("FLEETUP_BENCH_ANSIBLE").is_ok_and(|v| v != "0") {
            let a = ansible(dir, &h, &list, &pkgs[1]);
            println!(
                "  Ansible over SSH (forks 10, pipelining): {a:.2} s, {:.1}x fleetup's median (target >= 10)",
                a / common::median(&f)
            );
        }
    } else {
        let (f, b, m) = pair(runs, &mut default_run, |_| {
            let script = format!(
                "{} && {}",
                read_loop(&h, &list),
                upgrade_loop(dir, &h, &list, &pkgs[1], &shell_dir())
            );
            measure(bash(&script))
        });
        report(
            n,
            "default preflight (`max_connections` 64)",
            "read loop (`xargs -P10 ssh HOST cat RELEASES`) then the upgrade loop",
            &f,
            &b,
            &m,
            1.25,
        );
        let mut wave_run = |_k: usize| {
            let v = version();
            measure(apply(&plan(
                dir,
                &h,
                &roots,
                &versions[v],
                "  waves: [\"25%\"]\n  preflight: wave\n",
            )))
        };
        let (f, b, m) = pair(runs, &mut wave_run, loop_run);
        report(
            n,
            "`preflight: wave`, waves of 25%",
            "the upgrade loop",
            &f,
            &b,
            &m,
            1.25,
        );
    }
    if let Some(before) = &before {
        let label =
            std::env::var("FLEETUP_BENCH_BEFORE_LABEL").unwrap_or_else(|_| format!("`{before}`"));
        let bin = Path::new(before);
        // Its agent copied to every host, unmeasured, as this build's was.
        let v = version();
        measure(apply_with(bin, &plan(dir, &h, &roots, &versions[v], "")));
        let (f, b, m) = pair(runs, &mut default_run, |_| {
            let v = version();
            measure(apply_with(bin, &plan(dir, &h, &roots, &versions[v], "")))
        });
        report(
            n,
            "this build against an earlier one",
            &format!("{label}, the same plan to the same hosts"),
            &f,
            &b,
            &m,
            1.10,
        );
    }
    // Every node ends on the last release fleetup took it to.
    let last = &versions[next.get() - 1];
    for root in &roots {
        assert_eq!(
            std::fs::read_link(root.join("permanent")).unwrap(),
            Path::new("releases").join(last)
        );
    }
    if n <= 64 && std::env::var("FLEETUP_BENCH_MIRROR").map_or(true, |v| v != "0") {
        // Versions after every one the local repository holds.
        mirror(dir, &h, &roots, runs, 16 + 3 * runs + extra + 1);
    }
    let (conns, sessions) = h
        .servers
        .iter()
        .map(|s| s.counts())
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
    println!("  the servers saw {conns} authenticated connections and {sessions} sessions in all");
}

fn main() {
    common::require(&["unzip", "xargs", "bash", "ssh"]);
    let runs = common::runs();
    let sizes: Vec<usize> = match std::env::var("FLEETUP_BENCH_HOSTS") {
        Ok(v) => v.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        Err(_) => vec![50, 200],
    };
    for n in sizes {
        size(n, runs);
    }
}
