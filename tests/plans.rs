//! Every shipped plan (plans/ and the `init` templates) is valid, and each YAML plan
//! says exactly what its TOML twin says.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use fleetup::plan::tree::{parse_toml, parse_yaml};

fn fleetup() -> Command {
    Command::cargo_bin("fleetup").unwrap()
}

fn plans() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("plans")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "toml")
            )
        })
        .collect();
    v.sort();
    v
}

fn tree(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    let node = if path.extension().unwrap() == "toml" {
        parse_toml(&text).unwrap().unwrap()
    } else {
        parse_yaml(&text).unwrap().unwrap()
    };
    node.to_json()
}

#[test]
fn every_plan_in_plans_checks_clean() {
    let all = plans();
    assert!(all.len() >= 6, "expected the example plans, found {all:?}");
    for p in all {
        let out = fleetup().arg("check").arg(&p).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}:\n{stdout}{stderr}",
            p.display()
        );
        assert!(
            stdout.starts_with(&format!("ok: {}", p.display())),
            "{stdout}"
        );
        assert!(stderr.is_empty(), "{}: {stderr}", p.display());
    }
}

#[test]
fn every_plan_exists_in_both_formats_and_they_agree() {
    let all = plans();
    for p in all.iter().filter(|p| p.extension().unwrap() == "yaml") {
        let twin = p.with_extension("toml");
        assert!(twin.exists(), "{} has no TOML twin", p.display());
        assert_eq!(
            tree(p),
            tree(&twin),
            "{} and its TOML twin differ",
            p.display()
        );
    }
    for p in all.iter().filter(|p| p.extension().unwrap() == "toml") {
        assert!(
            p.with_extension("yaml").exists(),
            "{} has no YAML twin",
            p.display()
        );
    }
}

#[test]
fn init_templates_agree_show_every_key_and_validate() {
    // The neutral template (the default) and EMQX's (`--example emqx`).
    for example in [&[][..], &["--example", "emqx"][..]] {
        init_template_agrees_shows_every_key_and_validates(example);
    }
}

fn init_template_agrees_shows_every_key_and_validates(example: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    for ext in ["yaml", "toml"] {
        let f = dir.path().join(format!("plan.{ext}"));
        fleetup()
            .args(["init"])
            .args(example)
            .arg(&f)
            .assert()
            .success();
        if example.is_empty() {
            // Neutral: no word of EMQX's.
            let text = std::fs::read_to_string(&f).unwrap();
            for word in ["emqx", "EMQX", "otp2", "\"ce\"", " ce ", "18083"] {
                assert!(
                    !text.contains(word),
                    "the neutral template says `{word}`:\n{text}"
                );
            }
        }
        // Refuses to overwrite, leaving the file as it was; --force overwrites.
        let text = std::fs::read_to_string(&f).unwrap();
        std::fs::write(&f, "# edited by hand\n").unwrap();
        let again = fleetup()
            .args(["init"])
            .args(example)
            .arg(&f)
            .output()
            .unwrap();
        assert_eq!(again.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "# edited by hand\n");
        fleetup()
            .args(["init", "--force"])
            .args(example)
            .arg(&f)
            .assert()
            .success();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), text);
        for key in fleetup::plan::schema::all_key_paths() {
            let last = key.rsplit(['.', ']']).next().unwrap();
            let shown = if ext == "yaml" {
                text.contains(&format!("{last}:"))
            } else {
                [
                    format!("{last} ="),
                    format!("[{last}]"),
                    format!(".{last}]"),
                    // A table of named tables: `[groups.overrides.web]`.
                    format!(".{last}."),
                ]
                .iter()
                .any(|s| text.contains(s))
            };
            assert!(shown, "init .{ext} does not show `{key}`");
        }
        // Valid but for the directories it names, which do not exist here.
        let out = fleetup()
            .args(["check", "--format", "json"])
            .arg(&f)
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let codes: Vec<&str> = report["files"][0]["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["code"].as_str().unwrap())
            .collect();
        assert_eq!(
            codes,
            vec!["fleetup::plan::path", "fleetup::plan::path"],
            "{ext}: {report}"
        );
    }
    assert_eq!(
        tree(&dir.path().join("plan.yaml")),
        tree(&dir.path().join("plan.toml"))
    );
    // Without a file: YAML on stdout.
    let out = fleetup().arg("init").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("# fleetup plan"));
}

#[test]
fn schema_is_json_and_covers_every_key() {
    let out = fleetup().arg("schema").output().unwrap();
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(
        schema["properties"]["rollout"]["properties"]["on_failure"]["enum"][1],
        "rollback-all"
    );
    assert_eq!(
        schema["properties"]["nodes"]["items"]["required"][0],
        "name"
    );
    for key in fleetup::plan::schema::all_key_paths() {
        let mut at = &schema;
        for part in key.split('.') {
            at = match part.strip_suffix("[]") {
                // A table of named tables: any name, each a table of the same keys.
                _ if part == "*" => &at["additionalProperties"],
                Some(list) => &at["properties"][list]["items"],
                None => &at["properties"][part],
            };
        }
        assert!(at.is_object(), "schema lacks {key}");
    }
}

/// Completions for each shell name the commands and their flags (issue 29: exit 0 and
/// the word "fleetup" alone held for an empty script), and the bash script parses.
#[test]
fn completions_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let out = fleetup().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        for word in [
            "apply",
            "resume",
            "rollback",
            "approve",
            "wait-for-lock",
            "--format",
        ] {
            let word = if shell == "fish" {
                word.trim_start_matches("--")
            } else {
                word
            };
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let bash = dir.path().join("fleetup.bash");
    let out = fleetup().args(["completions", "bash"]).output().unwrap();
    std::fs::write(&bash, &out.stdout).unwrap();
    let parsed = std::process::Command::new("bash")
        .arg("-n")
        .arg(&bash)
        .status()
        .unwrap();
    assert!(parsed.success(), "the bash completions do not parse");
}

/// `fleetup schema` as a third-party validator reads it (check-jsonschema, from PyPI;
/// scripts/test installs it): every shipped plan, YAML and TOML, passes, and a plan with
/// a misspelt key fails, as `fleetup check` says.
#[test]
fn a_third_party_validator_agrees_with_check_on_the_shipped_plans() {
    let t = tempfile::tempdir().unwrap();
    let out = fleetup().arg("schema").output().unwrap();
    assert!(out.status.success());
    let schema = t.path().join("schema.json");
    std::fs::write(&schema, &out.stdout).unwrap();
    let validator = |files: &[std::path::PathBuf]| {
        std::process::Command::new("check-jsonschema")
            .arg("--schemafile")
            .arg(&schema)
            .args(files)
            .output()
            .unwrap_or_else(|e| {
                panic!("check-jsonschema is needed (pip install check-jsonschema; scripts/test installs it): {e}")
            })
    };
    let mut plans: Vec<std::path::PathBuf> = std::fs::read_dir("plans")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "toml"))
        .collect();
    plans.sort();
    assert!(plans.len() >= 6, "{plans:?}");
    let out = validator(&plans);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = t.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "plan: 1\nname: x\nproduct: emqx\nrepository: ./r\nto: 4.4.16\nnodes:\n  - { name: n1, root: /srv/n1, plarform: el8-amd64 }\n",
    )
    .unwrap();
    let out = validator(std::slice::from_ref(&bad));
    assert!(
        !out.status.success(),
        "the validator accepted a misspelt key"
    );
    let out = fleetup().arg("check").arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("plan::unknown-key") && err.contains("platform"),
        "{err}"
    );
}

#[test]
fn market_templates_have_a_schema_a_third_party_validator_uses() {
    let t = tempfile::tempdir().unwrap();
    let out = fleetup().args(["schema", "--market"]).output().unwrap();
    assert!(out.status.success());
    let schema = t.path().join("market.json");
    std::fs::write(&schema, &out.stdout).unwrap();
    let validate = |files: &[std::path::PathBuf]| {
        std::process::Command::new("check-jsonschema")
            .arg("--schemafile")
            .arg(&schema)
            .args(files)
            .output()
            .unwrap_or_else(|e| {
                panic!("check-jsonschema is needed (scripts/test installs it): {e}")
            })
    };
    let mut shipped: Vec<std::path::PathBuf> = std::fs::read_dir("plans/market/mall")
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    shipped.sort();
    assert!(!shipped.is_empty());
    let out = validate(&shipped);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // What fleetup refuses, the schema refuses: a misspelt key, and a path for a name.
    for bad in [
        "app: mall\nversion: 1.0.0\nservices:\n  web: { imgae: mall/web:1 }\n",
        "app: mall\nversion: 1.0.0\nservices:\n  ../x: { image: mall/web:1 }\n",
    ] {
        let f = t.path().join("bad.yaml");
        std::fs::write(&f, bad).unwrap();
        assert!(
            !validate(&[f]).status.success(),
            "the schema accepted:\n{bad}"
        );
    }
}
