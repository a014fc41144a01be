//! The plan's keys, their types, defaults and docs, declared once.
//!
//! Validation checks every document against these tables (unknown keys, types, ranges),
//! `fleetup schema` renders them as JSON Schema, and a test holds `fleetup init`'s
//! template to them, so the three can never disagree about what a plan may contain.

use serde_json::{Map, Value, json};

#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

#[derive(Debug)]
pub enum Ty {
    Str,
    /// A name safe as a file name (targets, apps, services).
    Name,
    Int {
        min: i64,
        max: i64,
    },
    Bool,
    Version,
    Duration,
    Path,
    Enum(&'static [&'static str]),
    /// A command as a list of strings; placeholders allowed inside elements.
    Argv,
    /// A string with `{placeholders}`.
    Template,
    /// A table of string (or number, or boolean) values.
    Vars,
    /// A count or a percentage string.
    CountOrPercent {
        min: i64,
    },
    /// A wave: a count, a percentage, or a selector (`@tag`, `@label=value`, a name).
    Wave,
    /// A table of labels: names to plain values (`zone: eu-1a`).
    Labels,
    /// A number, whole or not.
    Number,
    /// One of two: the first when the value has its shape (a list, a table, …).
    Either(&'static Ty, &'static Ty),
    List(&'static Ty),
    Table(&'static [Field]),
    /// A table whose keys are names (services) and whose values are tables of `fields`.
    Named(&'static [Field]),
}

macro_rules! field {
    ($name:literal, $ty:expr, required, $doc:literal) => {
        Field {
            name: $name,
            ty: $ty,
            required: true,
            default: None,
            doc: $doc,
        }
    };
    ($name:literal, $ty:expr, default $def:literal, $doc:literal) => {
        Field {
            name: $name,
            ty: $ty,
            required: false,
            default: Some($def),
            doc: $doc,
        }
    };
    ($name:literal, $ty:expr, $doc:literal) => {
        Field {
            name: $name,
            ty: $ty,
            required: false,
            default: None,
            doc: $doc,
        }
    };
}

pub const DAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

pub static HEALTH: &[Field] = &[
    field!(
        "http",
        Ty::Template,
        "URL polled with GET; healthy when it answers `expect_status`"
    ),
    field!(
        "tcp",
        Ty::Template,
        "host:port that must accept a connection"
    ),
    field!("command", Ty::Argv, "command (argv) that must exit 0"),
    field!("expect_status", Ty::Int { min: 100, max: 599 }, default "200", "HTTP status that means healthy"),
    field!(
        "give_up_on",
        Ty::List(&Ty::Int { min: 1, max: 599 }),
        "statuses that mean failed for good, ending the wait at once: exit statuses (1-255) of a `command` check, HTTP statuses of an `http` check"
    ),
    field!("timeout", Ty::Duration, default "60s", "deadline to become healthy"),
    field!("interval", Ty::Duration, default "1s", "time between two polls"),
    field!("healthy_for", Ty::Duration, default "0s", "how long the target must then stay healthy"),
    field!(
        "rollback_timeout",
        Ty::Duration,
        "deadline to become healthy again after a rollback (default: `timeout`)"
    ),
];

pub static POLICY: &[Field] = &[field!(
    "version",
    Ty::Enum(&["patch", "minor", "major"]),
    default "patch",
    "how far an upgrade may jump: patch (x.y.z → x.y.z+N), minor (same major), major (any newer)"
)];

pub static DOMAINS: &[Field] = &[
    field!(
        "by",
        Ty::Str,
        required,
        "the label whose value is a target's failure domain, e.g. zone"
    ),
    field!(
        "order",
        Ty::Either(&Ty::List(&Ty::Str), &Ty::Enum(&["plan", "smallest_first"])),
        default "plan",
        "domains in this order (a list of label values; others follow in plan order), smallest_first, or plan (as their first target appears)"
    ),
    field!("max_unavailable", Ty::CountOrPercent { min: 1 }, default "1", "targets of one domain changing at once (count, or \"N%\" of the domain rounded down, at least 1)"),
];

pub static MIN_AVAILABLE: &[Field] = &[
    field!(
        "select",
        Ty::Str,
        required,
        "the targets: @tag, @label=value, a name or a glob"
    ),
    field!(
        "count",
        Ty::CountOrPercent { min: 1 },
        required,
        "how many of them stay up during every wave (count or \"N%\" rounded up)"
    ),
];

pub static BUDGET: &[Field] = &[
    field!(
        "count",
        Ty::CountOrPercent { min: 0 },
        required,
        "failed targets tolerated (count, or \"N%\" of the scope's targets rounded down)"
    ),
    field!("scope", Ty::Enum(&["run", "wave", "domain"]), default "run", "what the count is of: the whole run, each wave, each failure domain"),
];

pub static GATE: &[Field] = &[
    field!(
        "after_wave",
        Ty::Int {
            min: 1,
            max: 100000
        },
        required,
        "the wave (1 is the first) after which the gate stands"
    ),
    field!(
        "approve",
        Ty::Enum(&["manual"]),
        "manual: the run pauses (exit 6) until `fleetup approve RUN`, then `fleetup resume`"
    ),
    field!("wait", Ty::Duration, "wait this long before the next wave"),
];

pub static ROLLOUT: &[Field] = &[
    field!("max_parallel", Ty::Int { min: 1, max: 1000 }, default "10", "targets worked on at once"),
    field!("waves", Ty::List(&Ty::Wave), default "[\"100%\"]", "batch sizes, a count or a % of the targets, or a selector (\"@canary\") for a wave of exactly those; the last size repeats"),
    field!("max_failures", Ty::Either(&Ty::Table(BUDGET), &Ty::CountOrPercent { min: 0 }), default "0", "failed targets tolerated in the whole run (count or \"N%\"), or { count, scope: run | wave | domain }"),
    field!(
        "domains",
        Ty::Table(DOMAINS),
        "failure domains: waves one domain at a time, at most max_unavailable of a domain changing at once"
    ),
    field!(
        "min_available",
        Ty::List(&Ty::Table(MIN_AVAILABLE)),
        "groups of targets that keep this many up during every wave"
    ),
    field!(
        "gates",
        Ty::List(&Ty::Table(GATE)),
        "pauses after waves: a manual approval or a wait"
    ),
    field!("on_failure", Ty::Enum(&["rollback", "rollback-all", "stop"]), default "rollback", "a target that fails its check goes back (rollback) or is left as it is (stop); rollback-all also takes back every target the run upgraded once failures exceed max_failures"),
    field!("permanent", Ty::Bool, default "true", "make new releases permanent; false leaves them current"),
    field!("pause", Ty::Duration, default "0s", "wait between waves"),
    field!("max_connections", Ty::Int { min: 1, max: 10000 }, default "64", "SSH connections (one ssh process each) open at once; beyond it a host's connection is closed after it is read and opened again for its turn"),
    field!("preflight", Ty::Enum(&["all", "wave"]), default "all", "when remote stores are read: all before any host changes, or each wave's right before that wave"),
];

pub static NODE_HOOKS: &[Field] = &[
    field!(
        "activate",
        Ty::Argv,
        "command run after `current` is switched, to load the new release"
    ),
    field!(
        "before",
        Ty::Argv,
        "command run on the node's host before it changes (drain it); failing leaves it unchanged and failed"
    ),
    field!(
        "after",
        Ty::Argv,
        "command run on the node's host once it is healthy on its new release, or back on its old one (undrain it)"
    ),
    field!(
        "on_rollback",
        Ty::Argv,
        "command run on the node's host after it was rolled back"
    ),
    field!("timeout", Ty::Duration, default "5m", "deadline of every hook; a timeout is a failure"),
];

pub static PROMETHEUS: &[Field] = &[
    field!(
        "url",
        Ty::Template,
        required,
        "the Prometheus server, e.g. http://prometheus:9090"
    ),
    field!(
        "query",
        Ty::Template,
        required,
        "PromQL; with a node placeholder ({name}, {host}, vars) it is asked once per node of the wave"
    ),
    field!("max", Ty::Number, "every sample must be at most this"),
    field!("min", Ty::Number, "every sample must be at least this"),
    field!("for", Ty::Duration, default "0s", "how long to keep measuring after the wave"),
    field!("interval", Ty::Duration, default "10s", "time between measurements"),
    field!("failure_limit", Ty::Int { min: 0, max: 1000 }, default "0", "measurements out of bounds tolerated"),
    field!("consecutive_errors", Ty::Int { min: 1, max: 1000 }, default "2", "measurements in a row with no answer or no data that make the analysis inconclusive (the run pauses); the last measurement must always have data"),
];

pub static ANALYSIS: &[Field] = &[
    field!(
        "name",
        Ty::Str,
        required,
        "what the analysis checks, as messages name it"
    ),
    field!(
        "prometheus",
        Ty::Table(PROMETHEUS),
        required,
        "the query and its bounds"
    ),
];

pub static NOTIFY: &[Field] = &[
    field!(
        "webhook",
        Ty::Template,
        required,
        "URL posted a JSON body (with a Slack-compatible `text`); ${ENV} keeps a secret out of the plan"
    ),
    field!("on", Ty::List(&Ty::Enum(&["run_start", "wave_done", "failed", "paused", "finished"])), default "[\"failed\", \"paused\", \"finished\"]", "which moments to post"),
];

pub static TRUST: &[Field] = &[field!(
    "minisign",
    Ty::List(&Ty::Str),
    required,
    "minisign public keys (the base64 line of minisign.pub); every package needs a valid <file>.minisig from one of them"
)];

pub static WINDOW: &[Field] = &[
    field!("days", Ty::List(&Ty::Enum(DAYS)), default "every day", "days on which the window opens"),
    field!("from", Ty::Str, required, "opening time, HH:MM"),
    field!(
        "to",
        Ty::Str,
        required,
        "closing time, HH:MM (before `from` means the next day)"
    ),
    field!("tz", Ty::Str, default "UTC", "IANA time zone of from/to"),
];

pub static DEFAULTS: &[Field] = &[
    field!(
        "root",
        Ty::Path,
        "release store directory of every node without its own root"
    ),
    field!(
        "vars",
        Ty::Vars,
        "template values of every node (a node's own vars win)"
    ),
    field!("tags", Ty::List(&Ty::Name), "tags of every node"),
    field!(
        "labels",
        Ty::Labels,
        "labels of every node (a node's own win)"
    ),
    field!(
        "platform",
        Ty::Str,
        "<os>-<arch> of every node that runs no release yet, e.g. ubuntu20.04-amd64"
    ),
];

pub static NODE: &[Field] = &[
    field!("name", Ty::Name, required, "unique target name"),
    field!("host", Ty::Str, default "127.0.0.1", "value of {host}"),
    field!(
        "ssh",
        Ty::Str,
        "[user@]host[:port] of a remote node, reached with OpenSSH"
    ),
    field!(
        "root",
        Ty::Path,
        "release store directory (default: defaults.root)"
    ),
    field!("vars", Ty::Vars, "template values: {port} and any other"),
    field!(
        "from",
        Ty::Version,
        "pin: apply refuses if the node runs another version"
    ),
    field!("to", Ty::Version, "target version (default: the plan's to)"),
    field!(
        "sha256",
        Ty::Str,
        "expected SHA-256 of the node's target package"
    ),
    field!(
        "tags",
        Ty::List(&Ty::Name),
        "tags, selected with --only @tag"
    ),
    field!(
        "labels",
        Ty::Labels,
        "labels such as zone: eu-1a, for rollout.domains and @label=value selectors"
    ),
    field!(
        "platform",
        Ty::Str,
        "<os>-<arch> of the node's packages while it runs no release (later: its release's)"
    ),
];

pub static APP: &[Field] = &[
    field!("app", Ty::Name, required, "app name in the market"),
    field!("to", Ty::Version, required, "target version of the app"),
    field!("services", Ty::List(&Ty::Name), default "every upgrade and add", "services to upgrade"),
];

pub static GROUP_HOOKS: &[Field] = &[
    field!(
        "deploy",
        Ty::Argv,
        "command run per service after its spec is written ({spec})"
    ),
    field!(
        "before",
        Ty::Argv,
        "command run before the group changes (drain it); failing leaves it unchanged and failed"
    ),
    field!(
        "after",
        Ty::Argv,
        "command run once the group is healthy on its new versions, or back on its old ones"
    ),
    field!(
        "on_rollback",
        Ty::Argv,
        "command run after the group's upgrade was rolled back"
    ),
    field!(
        "remove",
        Ty::Argv,
        "command that undeploys a service ({spec}, {service}): run for a service an upgrade added whose deploy or health check failed (without it, the service is kept and its record says so)"
    ),
    field!("timeout", Ty::Duration, default "5m", "deadline of every hook; a timeout is a failure"),
];

pub static OVERRIDE_PORT: &[Field] = &[
    field!(
        "port",
        Ty::Int { min: 1, max: 65535 },
        required,
        "container port"
    ),
    field!("protocol", Ty::Str, default "tcp", "tcp, udp, http, https, …"),
    field!(
        "host",
        Ty::Int { min: 1, max: 65535 },
        "publish the port on the host at this port (Compose `ports`), for clients outside the engine's network"
    ),
];

pub static OVERRIDE_VOLUME: &[Field] = &[
    field!("path", Ty::Str, required, "mount path"),
    field!(
        "size",
        Ty::Str,
        "size of its claim in a Kubernetes render, as Kubernetes writes quantities: 10Gi, 500Mi (default: 1Gi)"
    ),
];

pub static OVERRIDE: &[Field] = &[
    field!(
        "env",
        Ty::Vars,
        "environment values that win over the template's"
    ),
    field!(
        "ports",
        Ty::List(&Ty::Table(OVERRIDE_PORT)),
        "ports added to the template's"
    ),
    field!(
        "volumes",
        Ty::List(&Ty::Table(OVERRIDE_VOLUME)),
        "volumes added to the template's"
    ),
];

pub static SCRIPTED_HOOKS: &[Field] = &[
    field!(
        "before",
        Ty::Argv,
        "command run where its commands run, before it changes (drain it); failing leaves it unchanged and failed"
    ),
    field!(
        "after",
        Ty::Argv,
        "command run once it is healthy on its new version, or back on its old one (undrain it)"
    ),
    field!(
        "on_rollback",
        Ty::Argv,
        "command run after it was rolled back"
    ),
    field!("timeout", Ty::Duration, default "5m", "deadline of every hook; a timeout is a failure"),
];

pub static SCRIPTED: &[Field] = &[
    field!("name", Ty::Name, required, "unique target name"),
    field!(
        "version",
        Ty::Argv,
        required,
        "command that prints the running version (its last line that is a version counts)"
    ),
    field!(
        "upgrade",
        Ty::Argv,
        required,
        "command that installs {version} (the version it goes to; {previous} the one before)"
    ),
    field!(
        "rollback",
        Ty::Argv,
        default "upgrade with the previous version",
        "command that goes back to {previous}"
    ),
    field!("to", Ty::Version, required, "target version"),
    field!(
        "from",
        Ty::Version,
        "the version it must run now, or the run refuses it"
    ),
    field!(
        "ssh",
        Ty::Str,
        "[user@]host[:port] its commands run on, over the connection nodes there use"
    ),
    field!(
        "health",
        Ty::Table(HEALTH),
        "health check once it runs {version}"
    ),
    field!("vars", Ty::Vars, "values for this target's placeholders"),
    field!(
        "tags",
        Ty::List(&Ty::Name),
        "tags for --only and waves (@tag)"
    ),
    field!(
        "labels",
        Ty::Labels,
        "labels for waves (@key=value) and failure domains"
    ),
    field!("timeout", Ty::Duration, default "5m", "deadline of each command; a timeout is a failure"),
    field!(
        "hooks",
        Ty::Table(SCRIPTED_HOOKS),
        "lifecycle hooks around its change"
    ),
];

pub static GROUP: &[Field] = &[
    field!("name", Ty::Name, required, "unique target name"),
    field!("root", Ty::Path, required, "group directory"),
    field!(
        "market",
        Ty::Path,
        required,
        "market directory of app templates"
    ),
    field!(
        "apps",
        Ty::List(&Ty::Table(APP)),
        required,
        "apps of the group to upgrade"
    ),
    field!("hooks", Ty::Table(GROUP_HOOKS), "hooks of this group"),
    field!(
        "render",
        Ty::Enum(&["spec", "kubernetes", "compose"]),
        default "spec",
        "format of services/<svc>.yaml given to the deploy hook: fleetup's spec, Kubernetes manifests (Deployment, Service, PersistentVolumeClaims) or a Compose file"
    ),
    field!(
        "overrides",
        Ty::Named(OVERRIDE),
        "local settings per service (env, ports, volumes) merged into every rendered spec and kept across upgrades"
    ),
    field!(
        "health",
        Ty::Table(HEALTH),
        "health check run per upgraded service"
    ),
    field!("vars", Ty::Vars, "template values"),
    field!(
        "tags",
        Ty::List(&Ty::Name),
        "tags, selected with --only @tag"
    ),
    field!(
        "labels",
        Ty::Labels,
        "labels such as zone: eu-1a, for rollout.domains and @label=value selectors"
    ),
];

pub static PLAN: &[Field] = &[
    field!(
        "plan",
        Ty::Int { min: 1, max: 1 },
        required,
        "schema version of this file format"
    ),
    field!("name", Ty::Str, required, "name of the rollout"),
    field!(
        "product",
        Ty::Str,
        "product name at the start of release package names (required with nodes)"
    ),
    field!("runtime", Ty::Str, default "otp", "runtime prefix in package names"),
    field!(
        "runtime_compat",
        Ty::Enum(&["major", "minor", "exact"]),
        default "major",
        "how alike two releases' runtimes must be: the same major (Erlang/OTP), the same major and minor (Python's compiled modules), or the very same"
    ),
    field!(
        "repository",
        Ty::Path,
        "directory holding release packages, or an http:// or https:// mirror whose SHA256SUMS lists them (required with nodes)"
    ),
    field!("repository_via", Ty::Enum(&["host", "controller"]), default "host", "with an http:// mirror: remote hosts download packages themselves (host), or the controller downloads and sends them (controller, for hosts that cannot reach the mirror)"),
    field!("to", Ty::Version, "default target version of every node"),
    field!(
        "edition",
        Ty::Str,
        "wanted edition (default: each node's own; ce when unknown)"
    ),
    field!(
        "sha256",
        Ty::Str,
        "expected SHA-256 of the package of the plan's `to`"
    ),
    field!(
        "state",
        Ty::Path,
        "state directory for run journals (default: $FLEETUP_STATE_DIR, then ~/.local/state/fleetup)"
    ),
    field!(
        "ssh_config",
        Ty::Path,
        "ssh_config file passed to every ssh as -F"
    ),
    field!("ssh_host_keys", Ty::Enum(&["strict", "accept-new"]), default "strict", "host key checking of ssh"),
    field!(
        "agents",
        Ty::Path,
        "directory of fleetup agent binaries for hosts of other platforms, named fleetup-<os>-<arch> (default: $FLEETUP_AGENTS)"
    ),
    field!("policy", Ty::Table(POLICY), "version policy"),
    field!(
        "trust",
        Ty::Table(TRUST),
        "keys packages must be signed by: without a valid signature nothing is unpacked"
    ),
    field!(
        "rollout",
        Ty::Table(ROLLOUT),
        "waves, parallelism and failure handling"
    ),
    field!("health", Ty::Table(HEALTH), "health check of every node"),
    field!("hooks", Ty::Table(NODE_HOOKS), "hooks of every node"),
    field!(
        "window",
        Ty::Table(WINDOW),
        "maintenance window outside which apply refuses to start"
    ),
    field!(
        "analysis",
        Ty::List(&Ty::Table(ANALYSIS)),
        "metric checks against Prometheus after each wave; a failing one fails the wave"
    ),
    field!(
        "notify",
        Ty::List(&Ty::Table(NOTIFY)),
        "webhooks told when the run starts, a wave is done, it fails, pauses or finishes"
    ),
    field!(
        "defaults",
        Ty::Table(DEFAULTS),
        "values every node inherits"
    ),
    field!(
        "nodes",
        Ty::List(&Ty::Table(NODE)),
        "nodes (release stores) to upgrade"
    ),
    field!(
        "groups",
        Ty::List(&Ty::Table(GROUP)),
        "app groups to upgrade"
    ),
    field!(
        "scripted",
        Ty::List(&Ty::Table(SCRIPTED)),
        "software upgraded by the plan's own commands (a pip or apt package, an image)"
    ),
];

/// The JSON Schema (draft 2020-12) of a market's app template, as `fleetup group`
/// reads it (`group::AppTemplate`): unknown keys are refused there too.
pub fn market_schema() -> Value {
    let name = json!({ "type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$" });
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "fleetup market app template",
        "type": "object",
        "additionalProperties": false,
        "required": ["app", "version", "services"],
        "properties": {
            "app": { "description": "the app's name, as its directory in the market", "allOf": [name] },
            "version": {
                "description": "this template's version: SemVer, v1.2.3, or 1.2 (read as 1.2.0); as its file name says",
                "type": "string",
                "pattern": r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)(\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?)?$"
            },
            "services": {
                "description": "the app's services by name",
                "type": "object",
                "propertyNames": name,
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["image"],
                    "properties": {
                        "image": { "type": "string", "description": "container image" },
                        "ports": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "additionalProperties": false,
                                "required": ["port"],
                                "properties": {
                                    "port": { "type": "integer", "minimum": 0, "maximum": 65535 },
                                    "protocol": { "type": "string", "description": "tcp (default), udp, http, https, …" },
                                    "host": { "type": "integer", "minimum": 1, "maximum": 65535, "description": "publish the port on the host at this port (Compose `ports`)" }
                                }
                            }
                        },
                        "env": {
                            "type": "object",
                            "additionalProperties": { "type": "string" }
                        },
                        "volumes": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "additionalProperties": false,
                                "required": ["path"],
                                "properties": { "path": { "type": "string" } }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// The plan's JSON Schema (draft 2020-12).
pub fn json_schema() -> Value {
    let mut root = table_schema(PLAN);
    if let Value::Object(m) = &mut root {
        m.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        m.insert("title".into(), json!("fleetup plan"));
    }
    root
}

fn table_schema(fields: &[Field]) -> Value {
    let mut props = Map::new();
    for f in fields {
        let mut s = ty_schema(&f.ty);
        if let Value::Object(m) = &mut s {
            m.insert("description".into(), json!(f.doc));
            if let Some(d) = f.default {
                if let Ok(v) = serde_json::from_str::<Value>(d) {
                    m.insert("default".into(), v);
                } else {
                    m.insert("default".into(), json!(d));
                }
            }
        }
        props.insert(f.name.into(), s);
    }
    let required: Vec<&str> = fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": required,
        "properties": props,
    })
}

fn ty_schema(ty: &Ty) -> Value {
    match ty {
        Ty::Str | Ty::Path | Ty::Template => json!({ "type": "string" }),
        Ty::Name => json!({ "type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$" }),
        Ty::Int { min, max } => json!({ "type": "integer", "minimum": min, "maximum": max }),
        Ty::Bool => json!({ "type": "boolean" }),
        Ty::Version => json!({
            "type": "string",
            "pattern": r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"
        }),
        Ty::Duration => json!({ "type": "string", "pattern": r"^([0-9]+(ms|s|m|h))+$" }),
        Ty::Enum(values) => json!({ "enum": values }),
        Ty::Argv => json!({ "type": "array", "minItems": 1, "items": { "type": "string" } }),
        Ty::Vars => json!({
            "type": "object",
            "additionalProperties": { "type": ["string", "number", "boolean"] }
        }),
        Ty::CountOrPercent { min } => json!({
            "oneOf": [
                { "type": "integer", "minimum": min },
                { "type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?%$" }
            ]
        }),
        Ty::Wave => json!({
            "oneOf": [
                { "type": "integer", "minimum": 1 },
                { "type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?%$" },
                { "type": "string", "pattern": r"^[^0-9+-](.*[^%])?$" }
            ]
        }),
        Ty::Labels => json!({
            "type": "object",
            "propertyNames": { "pattern": "^[A-Za-z0-9_][A-Za-z0-9._/-]{0,63}$" },
            "additionalProperties": { "type": ["string", "number", "boolean"] }
        }),
        Ty::Number => json!({ "type": "number" }),
        Ty::Either(a, b) => json!({ "oneOf": [ty_schema(a), ty_schema(b)] }),
        Ty::List(item) => json!({ "type": "array", "items": ty_schema(item) }),
        Ty::Table(fields) => table_schema(fields),
        Ty::Named(fields) => json!({
            "type": "object",
            "propertyNames": { "pattern": "^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$" },
            "additionalProperties": table_schema(fields),
        }),
    }
}

/// The plan's keys as docs/reference/plan.md shows them: a table per table of the plan,
/// each key with its type, default and meaning (`fleetup schema --markdown` writes it, and
/// a test holds the committed page to it).
pub fn markdown() -> String {
    fn ty_words(ty: &Ty) -> String {
        match ty {
            Ty::Str => "string".into(),
            Ty::Name => "name (letters, digits, `.`, `_`, `-`)".into(),
            Ty::Int { min, max } => format!("integer, {min} to {max}"),
            Ty::Bool => "boolean".into(),
            Ty::Version => "SemVer version".into(),
            Ty::Duration => "duration (`500ms`, `30s`, `5m`, `1h`, `1m30s`)".into(),
            Ty::Path => "path (relative to the plan file)".into(),
            Ty::Enum(v) => v
                .iter()
                .map(|x| format!("`{x}`"))
                .collect::<Vec<_>>()
                .join(" | "),
            Ty::Argv => "command (a list of strings, placeholders allowed)".into(),
            Ty::Template => "string with `{placeholders}`".into(),
            Ty::Vars => "table of values".into(),
            Ty::CountOrPercent { min } => format!("count (from {min}) or `\"N%\"`"),
            Ty::Wave => {
                "count, `\"N%\"`, or a selector (`@tag`, `@label=value`, a name or glob)".into()
            }
            Ty::Labels => "table of labels".into(),
            Ty::Number => "number".into(),
            Ty::Either(a, b) => format!("{} or {}", ty_words(a), ty_words(b)),
            Ty::List(item) => match item {
                Ty::Table(_) => "list of tables (below)".into(),
                other => format!("list of: {}", ty_words(other)),
            },
            Ty::Table(_) => "table (below)".into(),
            Ty::Named(_) => "table of named tables (below)".into(),
        }
    }
    fn cell(s: &str) -> String {
        s.replace('|', "\\|")
            .replace('<', "&lt;")
            .replace('\n', " ")
    }
    fn section(
        title: &str,
        fields: &[Field],
        out: &mut String,
        more: &mut Vec<(String, &'static [Field])>,
    ) {
        let heading = if title == "(top level)" {
            "Top level".to_owned()
        } else {
            format!("`{title}`")
        };
        out.push_str(&format!(
            "\n## {heading}\n\n| key | type | default | meaning |\n|---|---|---|---|\n"
        ));
        for f in fields {
            let path = if title == "(top level)" {
                f.name.to_owned()
            } else {
                format!("{title}.{}", f.name)
            };
            let default = match (f.required, f.default) {
                (true, _) => "required".to_owned(),
                (false, Some(d)) => format!("`{d}`"),
                (false, None) => String::new(),
            };
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                f.name,
                cell(&ty_words(&f.ty)),
                cell(&default),
                cell(f.doc)
            ));
            match &f.ty {
                Ty::Table(sub) => more.push((path, sub)),
                Ty::List(Ty::Table(sub)) => more.push((format!("{path}[]"), sub)),
                Ty::Named(sub) => more.push((format!("{path}.<name>"), sub)),
                _ => {}
            }
        }
    }
    let mut out = String::from(
        "# Plan keys\n\nEvery key a plan may hold (YAML or TOML, the same schema), generated from the\n\
         schema fleetup validates with: `fleetup schema --markdown > docs/reference/plan.md`.\n\
         `fleetup schema` prints the same as JSON Schema, and `fleetup init` a commented\n\
         template; a test holds this page, the schema and the template to one another.\n",
    );
    let mut queue: Vec<(String, &'static [Field])> = vec![("(top level)".into(), PLAN)];
    while !queue.is_empty() {
        let (title, fields) = queue.remove(0);
        let mut more = Vec::new();
        section(&title, fields, &mut out, &mut more);
        queue.extend(more);
    }
    out
}

/// Every key path the schema allows, as `rollout.waves`, `nodes[].name`, for tests
/// and for the init template check.
pub fn all_key_paths() -> Vec<String> {
    fn walk(prefix: &str, fields: &[Field], out: &mut Vec<String>) {
        for f in fields {
            let path = if prefix.is_empty() {
                f.name.to_owned()
            } else {
                format!("{prefix}.{}", f.name)
            };
            out.push(path.clone());
            match &f.ty {
                Ty::Table(sub) => walk(&path, sub, out),
                Ty::List(Ty::Table(sub)) => walk(&format!("{path}[]"), sub, out),
                Ty::Named(sub) => walk(&format!("{path}.*"), sub, out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk("", PLAN, &mut out);
    out
}
