//! Package signatures made with the real `minisign` tool (Debian's package, installed by
//! scripts/test): a plan with `trust.minisign` upgrades with signed packages and refuses,
//! before any node changes, a package without a signature, one signed by another key,
//! one changed after it was signed, and a legacy signature; `fleetup node` with a
//! node.toml `[trust]` refuses to unpack one just the same.

mod common;

use std::path::{Path, PathBuf};

use common::*;

struct Setup {
    dir: tempfile::TempDir,
    key: String,
    secret: PathBuf,
    package: PathBuf,
}

/// Nodes n1, n2 on 4.4.15 (installed without trust), 4.4.16 in the repository, signed.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    local_fleet(dir.path(), &["n1", "n2"], &["4.4.15", "4.4.16"]);
    let (key, secret) = minisign_keypair(dir.path(), "release");
    let package = dir.path().join("repo").join(package_name("4.4.16"));
    minisign_sign(&secret, &package, false);
    Setup {
        dir,
        key,
        secret,
        package,
    }
}

impl Setup {
    fn plan(&self, key: &str) -> PathBuf {
        let text = format!(
            "plan: 1\nname: signed\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
             trust:\n  minisign: [\"{key}\"]\nnodes:\n  - {{ name: n1, root: ./n1 }}\n  - {{ name: n2, root: ./n2 }}\n"
        );
        let p = self.dir.path().join("plan.yaml");
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `check --format json`: its problems (code, message, line).
    fn problems(&self, plan: &Path) -> Vec<(String, String, u64)> {
        let (_, out, _) = output(fleetup().args(["check", "--format", "json"]).arg(plan));
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        doc["files"][0]["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["code"].as_str().unwrap().to_owned(),
                    p["message"].as_str().unwrap().to_owned(),
                    p["line"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    }

    /// The plan refused by `check` and `apply` for `why`, and no node changed.
    fn refused(&self, plan: &Path, why: &str) {
        let problems = self.problems(plan);
        assert!(
            problems
                .iter()
                .any(|(c, m, line)| c == "fleetup::package::signature"
                    && m.contains(why)
                    && *line == 5),
            "{problems:?}"
        );
        let before = snapshot(self.dir.path().join("n1").as_path());
        let (code, out, err) = output(fleetup().arg("apply").arg(plan).arg("--yes"));
        assert_eq!(code, Some(1), "{out}{err}");
        assert!(err.contains("fleetup::package::signature"), "{err}");
        assert_eq!(snapshot(self.dir.path().join("n1").as_path()), before);
    }
}

#[test]
fn a_plan_that_trusts_a_key_upgrades_with_packages_it_signed() {
    let s = setup();
    let plan = s.plan(&s.key);
    assert!(s.problems(&plan).is_empty(), "{:?}", s.problems(&plan));
    let (code, out, err) = output(fleetup().arg("apply").arg(&plan).arg("--yes"));
    assert_eq!(code, Some(0), "{out}{err}");
    for n in ["n1", "n2"] {
        assert_eq!(
            link(&s.dir.path().join(n), "current").as_deref(),
            Some("releases/4.4.16")
        );
    }
}

#[test]
fn a_package_without_a_valid_signature_is_refused_before_any_node_changes() {
    let s = setup();
    let plan = s.plan(&s.key);
    let sig = fleetup::signature::sig_path(&s.package);
    let good_sig = std::fs::read(&sig).unwrap();

    // No signature at all.
    std::fs::remove_file(&sig).unwrap();
    s.refused(&plan, "has no signature");

    // Signed, but by a key the plan does not trust.
    let (_, other) = minisign_keypair(s.dir.path(), "other");
    minisign_sign(&other, &s.package, false);
    s.refused(&plan, "signed by a key the plan does not trust");

    // Signed by the trusted key, then changed.
    std::fs::write(&sig, &good_sig).unwrap();
    let original = std::fs::read(&s.package).unwrap();
    let mut tampered = original.clone();
    let last = tampered.len() - 30;
    tampered[last] ^= 0xff;
    std::fs::write(&s.package, &tampered).unwrap();
    s.refused(&plan, "changed after it was signed");

    // A legacy (not prehashed) signature of the right file and key: refused too.
    std::fs::write(&s.package, &original).unwrap();
    minisign_sign(&s.secret, &s.package, true);
    s.refused(&plan, "legacy");

    // A key that is not one is the plan's own error, located.
    let bad = s.plan("RWQnotakey");
    let problems = s.problems(&bad);
    assert!(
        problems
            .iter()
            .any(|(c, m, line)| c == "fleetup::plan::value"
                && m.contains("not a minisign public key")
                && *line == 8),
        "{problems:?}"
    );
}

#[test]
fn a_node_that_trusts_a_key_refuses_to_unpack_a_tampered_package() {
    let s = setup();
    let root = s.dir.path().join("n1");
    std::fs::write(
        root.join("node.toml"),
        format!("product = \"emqx\"\n[trust]\nminisign = [\"{}\"]\n", s.key),
    )
    .unwrap();
    let mut bytes = std::fs::read(&s.package).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&s.package, &bytes).unwrap();
    let before = snapshot(&root);
    let (code, out, err) = output(fleetup().current_dir(s.dir.path()).args([
        "node", "upgrade", "4.4.16", "--root", "n1", "--repo", "repo",
    ]));
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("fleetup::package::signature"), "{err}");
    assert!(err.contains("changed after it was signed"), "{err}");
    // Not even the copy of the package stays behind.
    assert_eq!(snapshot(&root), before);
}

/// Issue 29, signatures on the remote path: a remote node's package (over a real sshd)
/// swapped between `plan` and `apply` for bytes its signature does not cover is refused
/// before the host receives a byte, the node unchanged; as signed, it upgrades.
#[test]
fn a_package_swapped_between_plan_and_apply_never_reaches_a_host() {
    let sshd = common::sshd::Sshd::start();
    let s = setup();
    let d = s.dir.path();
    let text = format!(
        "plan: 1\nname: signed\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
         ssh_config: {}\ntrust:\n  minisign: [\"{}\"]\n\
         nodes:\n  - {{ name: n1, ssh: \"{}\", root: {} }}\n",
        sshd.config().display(),
        s.key,
        sshd.addr(),
        d.join("n1").display()
    );
    let plan = d.join("remote.yaml");
    std::fs::write(&plan, text).unwrap();
    let original = std::fs::read(&s.package).unwrap();
    let mut tampered = original.clone();
    let at = tampered.len() - 30;
    tampered[at] ^= 0xff;
    // Swapped after `plan` read it, before `apply`: the run's own check refuses it.
    let (code, o, e) = output(fleetup().arg("plan").arg(&plan));
    assert_eq!(code, Some(0), "{o}{e}");
    std::fs::write(&s.package, &tampered).unwrap();
    let before = snapshot(&d.join("n1"));
    let (code, o, e) = output(fleetup().arg("apply").arg(&plan).arg("--yes"));
    assert_eq!(code, Some(1), "{o}{e}");
    let said = flat(&e);
    assert!(said.contains("changed after it was signed"), "{e}");
    assert_eq!(snapshot(&d.join("n1")), before);
    let received = std::fs::read_dir(sshd.remote_dir().join("packages"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(received, 0, "the host received a package");
    // Signed as it is: upgraded over SSH.
    std::fs::write(&s.package, &original).unwrap();
    let (code, o, e) = output(fleetup().arg("apply").arg(&plan).arg("--yes"));
    assert_eq!(code, Some(0), "{o}{e}");
    assert_eq!(
        link(&d.join("n1"), "current").as_deref(),
        Some("releases/4.4.16")
    );
}
