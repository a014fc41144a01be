//! The command line: every command and flag, with its help text.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Upgrade fleets of software installations from reviewed plan files.
#[derive(Debug, Parser)]
#[command(
    name = "fleetup",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Without a terminal, also print the store's own lines of each step (EMQX's words).
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate plans and check them against the repository and readable node stores;
    /// changes nothing.
    Check {
        /// Plan files (.yaml, .yml or .toml).
        #[arg(required = true, value_name = "PLAN")]
        plans: Vec<PathBuf>,
        /// Output format: human (diagnostics), json, github (workflow annotations) or sarif
        /// (SARIF 2.1.0 for code scanning).
        #[arg(long, value_enum, default_value_t = CheckFormat::Human)]
        format: CheckFormat,
        /// Check the plans alone: read no repository, package, store or market (for CI
        /// where the packages live elsewhere); the summary says what was skipped.
        #[arg(long)]
        offline: bool,
    },
    /// Dry run: read every target's live state and show what `apply` would do, changing
    /// nothing.
    Plan {
        /// The plan file (.yaml, .yml or .toml).
        plan: PathBuf,
        /// Targets to include: names, globs (emqx-*) or tags (@canary), comma-separated;
        /// !SEL leaves out what SEL matches (!n3, !@canary).
        #[arg(long, value_name = "SEL")]
        only: Option<String>,
        /// Output format: human, json, or markdown (for a pull-request comment).
        #[arg(long, value_enum, default_value_t = PlanFormat::Human)]
        format: PlanFormat,
        /// Say why each wave holds what it does: selectors, failure domains, sizes,
        /// the limits that cut it, and its failure budget.
        #[arg(long)]
        explain: bool,
    },
    /// What runs where now: each target's current and permanent release (a group's
    /// apps and services), lock holder, whether it is mid-change, and the last run that
    /// touched it. Changes nothing.
    Status {
        /// The plan whose targets to show.
        plan: PathBuf,
        /// Targets to include: names, globs (emqx-*) or tags (@canary), comma-separated;
        /// !SEL leaves out what SEL matches (!n3, !@canary).
        #[arg(long, value_name = "SEL")]
        only: Option<String>,
        /// Where run journals are read (default: the plan's `state`, $FLEETUP_STATE_DIR,
        /// $XDG_STATE_HOME/fleetup, ~/.local/state/fleetup).
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// Exit 0 only when every target runs the plan's version (as permanent, when the
        /// plan makes releases permanent), nothing is mid-change and no run of the plan is
        /// left paused or stopped; exit 1 otherwise, saying what differs (for cron and
        /// monitoring).
        #[arg(long)]
        drift: bool,
        /// human (a table), json, or prometheus (a textfile for node_exporter's textfile
        /// collector: one series per target).
        #[arg(long, value_enum, default_value_t = StatusFormat::Human)]
        format: StatusFormat,
    },
    /// Upgrade the plan's targets: waves, health checks, rollback of what fails.
    Apply {
        /// The plan file (.yaml, .yml or .toml).
        plan: PathBuf,
        /// Targets to include: names, globs (emqx-*) or tags (@canary), comma-separated;
        /// !SEL leaves out what SEL matches (!n3, !@canary).
        #[arg(long, value_name = "SEL")]
        only: Option<String>,
        /// Do not ask for confirmation (required without a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Where run journals are kept (default: the plan's `state`, $FLEETUP_STATE_DIR,
        /// $XDG_STATE_HOME/fleetup, ~/.local/state/fleetup).
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// Wait up to this long for locks held by another fleetup (e.g. 2m).
        #[arg(long, value_name = "DURATION")]
        wait_for_lock: Option<String>,
        /// Output format: human (progress, then a table), json (one document at the end) or jsonl (one event per line as it happens).
        #[arg(long, value_enum, default_value_t = RunFormat::Human)]
        format: RunFormat,
    },
    /// Continue an interrupted or window-paused run (the latest one by default).
    Resume {
        /// A run id, a unique prefix of one (`fleetup history` lists them), or `last`;
        /// default: the latest run that can be resumed.
        run: Option<String>,
        /// Where run journals are kept (default: the `state` of --plan, $FLEETUP_STATE_DIR,
        /// $XDG_STATE_HOME/fleetup, ~/.local/state/fleetup).
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// Read the journals where this plan's `state` key says.
        #[arg(long, value_name = "PLAN", conflicts_with = "state")]
        plan: Option<PathBuf>,
        /// Wait up to this long for locks held by another fleetup (e.g. 2m).
        #[arg(long, value_name = "DURATION")]
        wait_for_lock: Option<String>,
        /// Go on under the maintenance window the plan file has now (re-read from where
        /// the run was started), not the one the run started with.
        #[arg(long)]
        current_window: bool,
        /// Output format: human (progress, then a table), json (one document at the end) or jsonl (one event per line as it happens).
        #[arg(long, value_enum, default_value_t = RunFormat::Human)]
        format: RunFormat,
    },
    /// Approve the manual gate a paused run waits at (records who and when); then
    /// `fleetup resume RUN` goes on.
    Approve {
        /// A run id, a unique prefix of one (`fleetup history` lists them), or `last`.
        run: String,
        /// Where run journals are kept (as for `resume`).
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// Read the journals where this plan's `state` key says.
        #[arg(long, value_name = "PLAN", conflicts_with = "state")]
        plan: Option<PathBuf>,
    },
    /// End a paused, stopped or interrupted run for good; with --rollback, everything
    /// it upgraded goes back first (as `fleetup rollback RUN`).
    Abort {
        /// A run id, a unique prefix of one (`fleetup history` lists them), or `last`.
        run: String,
        /// Roll back what the run upgraded, newest first.
        #[arg(long)]
        rollback: bool,
        /// Where run journals are kept (as for `resume`).
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// Read the journals where this plan's `state` key says.
        #[arg(long, value_name = "PLAN", conflicts_with = "state")]
        plan: Option<PathBuf>,
        /// Do not ask for confirmation on a terminal.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Output format (of the rollback): human, json or jsonl.
        #[arg(long, value_enum, default_value_t = RunFormat::Human)]
        format: RunFormat,
    },
    /// Undo what a run changed: every node it upgraded goes back to its previous release.
    Rollback {
        /// A run id, a unique prefix of one (`fleetup history` lists them), or `last`.
        run: String,
        /// Targets to take back even though a later run or a hand change moved them on
        /// (comma-separated); without it such a target refuses the command (exit 5).
        #[arg(long, value_name = "TARGET", value_delimiter = ',')]
        force: Vec<String>,
        /// Where run journals are kept (default: the `state` of --plan, $FLEETUP_STATE_DIR,
        /// $XDG_STATE_HOME/fleetup, ~/.local/state/fleetup).
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// Read the journals where this plan's `state` key says.
        #[arg(long, value_name = "PLAN", conflicts_with = "state")]
        plan: Option<PathBuf>,
        /// Do not ask for confirmation on a terminal.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Output format: human (progress, then a table), json (one document at the end) or jsonl (one event per line as it happens).
        #[arg(long, value_enum, default_value_t = RunFormat::Human)]
        format: RunFormat,
    },
    /// List runs, or show one run's outcome per target.
    History {
        /// A run id, a unique prefix of one (as `fleetup history` lists them), or `last`.
        run: Option<String>,
        /// Where run journals are kept (default: the `state` of --plan, $FLEETUP_STATE_DIR,
        /// $XDG_STATE_HOME/fleetup, ~/.local/state/fleetup).
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// Read the journals where this plan's `state` key says.
        #[arg(long, value_name = "PLAN", conflicts_with = "state")]
        plan: Option<PathBuf>,
        /// Output format: human or json.
        #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
        format: OutputFormat,
    },
    /// Write everything an air-gapped controller needs to apply a plan into one new
    /// directory: the packages its nodes need (verified), their digests and
    /// signatures, fleetup as the agent, and the plan with the bundle as its repository.
    Bundle {
        /// The plan file (.yaml, .yml or .toml).
        plan: PathBuf,
        /// The directory to write (new, or empty).
        #[arg(long, short = 'o', value_name = "DIR")]
        out: PathBuf,
    },
    /// Print the plan's JSON Schema (or, with --market, a market template's), for
    /// editors and CI.
    Schema {
        /// The schema of a market's app templates (<market>/<app>/<version>.yaml).
        #[arg(long, conflicts_with = "markdown")]
        market: bool,
        /// The plan's keys as a Markdown reference page (docs/reference/plan.md).
        #[arg(long)]
        markdown: bool,
    },
    /// Write a commented template plan showing every key and its default.
    Init {
        /// Where to write it (.yaml, .yml or .toml); standard output when absent.
        file: Option<PathBuf>,
        /// Overwrite FILE if it exists.
        #[arg(long)]
        force: bool,
        /// A template for a product fleetup knows (emqx); without it, a neutral one.
        #[arg(long, value_enum)]
        example: Option<Example>,
    },
    /// Operate one node's release store by hand, the way `emqx` does.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Upgrade app groups built from market apps, and roll back the last upgrade.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Print a shell completion script.
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// The store agent a controller starts on a remote host over SSH (internal).
    #[command(name = "__agent", hide = true)]
    Agent {
        /// The host's fleetup work directory (received packages).
        #[arg(long)]
        dir: PathBuf,
    },
    /// Write the man pages, one per command (fleetup.1, fleetup-apply.1, fleetup-node-
    /// upgrade.1, …), into DIR (for packagers).
    #[command(name = "__man", hide = true)]
    Man {
        /// Where to write the pages.
        dir: PathBuf,
    },
    /// Print every command's help as a Markdown page (docs/reference/commands.md).
    #[command(name = "__commands-md", hide = true)]
    CommandsMd,
    /// Exit 0 when this binary's SHA-256 is the given one (internal: checks a copy).
    #[command(name = "__self-check", hide = true)]
    SelfCheck { sha256: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Human,
    Json,
    Github,
    /// SARIF 2.1.0, for code-scanning tools (GitHub code scanning, GitLab, IDEs)
    Sarif,
}

/// Options every `fleetup node` command shares.
#[derive(Debug, clap::Args)]
pub struct NodeOpts {
    /// The node's directory (holding releases/, current, permanent).
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// Product name in package names (default: from the store, <root>/node.toml, or the
    /// package names themselves).
    #[arg(long)]
    pub product: Option<String>,
    /// Runtime prefix in package names.
    #[arg(long)]
    pub runtime: Option<String>,
    /// Edition of the package to take (default: the node's own; ce on a fresh store).
    #[arg(long)]
    pub edition: Option<String>,
    /// <os>-<arch> of the package to take while the store runs no release (e.g.
    /// ubuntu20.04-amd64); a store with a release takes its release's.
    #[arg(long, value_name = "OS-ARCH")]
    pub platform: Option<String>,
    /// Wait up to this long for a lock held by another fleetup (e.g. 30s).
    #[arg(long, value_name = "DURATION")]
    pub wait_for_lock: Option<String>,
    /// Operate the store on a remote host over SSH; ROOT is a path there.
    #[arg(long, value_name = "[USER@]HOST[:PORT]")]
    pub ssh: Option<String>,
    /// ssh_config file passed to ssh as -F.
    #[arg(long, value_name = "FILE", requires = "ssh")]
    pub ssh_config: Option<PathBuf>,
    /// Trust the host key of a host never seen before (ssh's accept-new).
    #[arg(long, requires = "ssh")]
    pub accept_new_host_key: bool,
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List the releases of the store, newest first, with their states.
    Versions {
        #[command(flatten)]
        opts: NodeOpts,
        /// Output format: human or json.
        #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
        format: OutputFormat,
    },
    /// Copy a release package in and unpack it, without installing it.
    Unpack {
        /// The release version, e.g. 4.4.16.
        #[arg(value_name = "VSN")]
        vsn: String,
        #[command(flatten)]
        opts: NodeOpts,
        /// Directory to take the package from when releases/ does not hold it.
        #[arg(long, value_name = "DIR")]
        repo: Option<PathBuf>,
    },
    /// Upgrade to a newer release: unpack if needed, check the rules, install, activate,
    /// make permanent.
    Upgrade {
        /// The release version, e.g. 4.4.16.
        #[arg(value_name = "VSN")]
        vsn: String,
        #[command(flatten)]
        opts: NodeOpts,
        /// Directory to take the package from when releases/ does not hold it.
        #[arg(long, value_name = "DIR")]
        repo: Option<PathBuf>,
        /// Leave the release current; a restart goes back to the permanent one.
        #[arg(long)]
        no_permanent: bool,
        /// How far the upgrade may jump.
        #[arg(long, value_enum, default_value_t = Policy::Patch)]
        policy: Policy,
    },
    /// Install a release whose package is in releases/ (or is unpacked already).
    Install {
        /// The release version, e.g. 4.4.16.
        #[arg(value_name = "VSN")]
        vsn: String,
        #[command(flatten)]
        opts: NodeOpts,
        /// Leave the release current; a restart goes back to the permanent one.
        #[arg(long)]
        no_permanent: bool,
        /// How far the upgrade may jump.
        #[arg(long, value_enum, default_value_t = Policy::Patch)]
        policy: Policy,
    },
    /// Go back to an old (or unpacked) release of the same MAJOR.MINOR.
    Downgrade {
        /// The release version, e.g. 4.4.16.
        #[arg(value_name = "VSN")]
        vsn: String,
        #[command(flatten)]
        opts: NodeOpts,
    },
    /// Remove an unpacked or old release: its tree and its package.
    Uninstall {
        /// The release version, e.g. 4.4.16.
        #[arg(value_name = "VSN")]
        vsn: String,
        #[command(flatten)]
        opts: NodeOpts,
    },
    /// Prune a host's cache of fleetup agents and received packages, keeping the ones in
    /// use and the newest few (every run does this at the end of each host's session).
    Gc {
        /// The host whose cache to prune.
        #[arg(long, value_name = "[USER@]HOST[:PORT]")]
        ssh: String,
        /// ssh_config file passed to ssh as -F.
        #[arg(long, value_name = "FILE")]
        ssh_config: Option<PathBuf>,
        /// Trust the host key of a host never seen before (ssh's accept-new).
        #[arg(long)]
        accept_new_host_key: bool,
        /// Agents and packages kept besides the agent in use.
        #[arg(long, value_name = "N", default_value_t = 3)]
        keep: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
}

/// The products `init --example` writes a template for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Example {
    /// EMQX: Erlang/OTP runtimes, ce and ee editions, `emqx ctl`.
    Emqx,
}

/// How `status` shows the fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Human,
    Json,
    /// Prometheus' text format, for node_exporter's textfile collector.
    Prometheus,
}

/// How `plan` shows the dry run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Human,
    Json,
    /// A summary fit for a pull-request comment.
    Markdown,
}

/// How `apply`, `resume` and `rollback` report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RunFormat {
    /// Progress bars on a terminal, plain lines elsewhere, a table at the end.
    Human,
    /// One JSON document at the end (progress lines go to stderr).
    Json,
    /// One JSON object per event on stdout, as it happens (docs/reference/events.md).
    Jsonl,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Policy {
    Patch,
    Minor,
    Major,
}

impl From<Policy> for crate::package::VersionPolicy {
    fn from(p: Policy) -> Self {
        match p {
            Policy::Patch => Self::Patch,
            Policy::Minor => Self::Minor,
            Policy::Major => Self::Major,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}

#[derive(Debug, clap::Args)]
pub struct GroupOpts {
    /// The group's directory (group.toml, services/, records/, backups/).
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// Wait up to this long for a lock held by another fleetup (e.g. 30s).
    #[arg(long, value_name = "DURATION")]
    pub wait_for_lock: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// The group's apps, their versions, and newer versions in the market (marked ●).
    Status {
        #[command(flatten)]
        opts: GroupOpts,
        /// The market directory: app templates as <app>/<version>.yaml.
        #[arg(long, value_name = "DIR")]
        market: PathBuf,
        /// Output format: human or json.
        #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
        format: OutputFormat,
    },
    /// First install of an app from the market into the group.
    Install {
        /// The app, as the market names it.
        app: String,
        /// The version to install (1.2.3, v1.2.3, or 1.2 for 1.2.0).
        #[arg(value_name = "VSN")]
        vsn: String,
        #[command(flatten)]
        opts: GroupOpts,
        /// The market directory: app templates as <app>/<version>.yaml.
        #[arg(long, value_name = "DIR")]
        market: PathBuf,
    },
    /// What an upgrade would change, per service; changes nothing.
    Diff {
        /// The app, as the market names it.
        app: String,
        /// The version to upgrade to (1.2.3, v1.2.3, or 1.2 for 1.2.0).
        #[arg(long, value_name = "VSN")]
        to: String,
        #[command(flatten)]
        opts: GroupOpts,
        /// The market directory: app templates as <app>/<version>.yaml.
        #[arg(long, value_name = "DIR")]
        market: PathBuf,
        /// Services to upgrade, comma-separated (default: every upgrade and add).
        #[arg(long, value_delimiter = ',')]
        services: Option<Vec<String>>,
        /// How far the upgrade may jump: patch (default), minor or major.
        #[arg(long, value_enum, default_value_t = Policy::Patch)]
        policy: Policy,
        /// Output format: human or json.
        #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
        format: OutputFormat,
    },
    /// Upgrade an app: back the group up, deploy each chosen service, record it.
    Upgrade {
        /// The app, as the market names it.
        app: String,
        /// The version to upgrade to (1.2.3, v1.2.3, or 1.2 for 1.2.0).
        #[arg(long, value_name = "VSN")]
        to: String,
        #[command(flatten)]
        opts: GroupOpts,
        /// The market directory: app templates as <app>/<version>.yaml.
        #[arg(long, value_name = "DIR")]
        market: PathBuf,
        /// Services to upgrade, comma-separated (default: every upgrade and add).
        #[arg(long, value_delimiter = ',')]
        services: Option<Vec<String>>,
        /// How far the upgrade may jump: patch (default), minor or major.
        #[arg(long, value_enum, default_value_t = Policy::Patch)]
        policy: Policy,
    },
    /// The group's upgrade and rollback records.
    Records {
        #[command(flatten)]
        opts: GroupOpts,
        /// Output format: human or json.
        #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
        format: OutputFormat,
    },
    /// One record in full.
    Record {
        /// A record id as `group records` lists it (0003, or just 3).
        id: String,
        #[command(flatten)]
        opts: GroupOpts,
        /// Output format: human or json.
        #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
        format: OutputFormat,
    },
    /// Roll back the group's last upgrade (added services are kept).
    Rollback {
        #[command(flatten)]
        opts: GroupOpts,
        /// The upgrade record to roll back (0003, or just 3); only the last upgrade of an
        /// app can be.
        #[arg(long, value_name = "ID")]
        record: Option<String>,
        /// Services to roll back, comma-separated (default: all the upgrade changed).
        #[arg(long, value_delimiter = ',')]
        services: Option<Vec<String>>,
        /// Do not ask for confirmation on a terminal.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}
