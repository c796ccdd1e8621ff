//! The `mxctl` command line as clap parses it: the global options, every command group
//! and its arguments. [`super::commands`] maps a parsed command to its plan.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Where `mxctl` looks when neither `--url` nor `MXMESH_URL` is given: the admin
/// listener of a node on this host with the default config.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8025";
/// Upper bound for a rule or settings file, or one read from stdin; a rule is a
/// few KiB.
pub const JSON_INPUT_MAX_BYTES: u64 = 1024 * 1024;

/// mxctl: admin CLI for an mxmesh cluster. Any node answers for the whole mesh.
#[derive(Debug, Parser)]
#[command(name = "mxctl", version, propagate_version = true)]
pub struct Cli {
    /// Admin API base URL of any node, e.g. http://10.0.0.11:8025
    #[arg(long, env = "MXMESH_URL", default_value = DEFAULT_URL, global = true, display_order = 900)]
    pub url: String,
    /// Admin token, sent as `Authorization: Bearer TOKEN`
    #[arg(
        long,
        env = "MXMESH_TOKEN",
        hide_env_values = true,
        global = true,
        display_order = 901
    )]
    pub token: Option<String>,
    /// Print compact JSON on one line instead of pretty JSON or a table
    #[arg(long)]
    pub json: bool,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Compact-output switch repeated on each command so it may follow the command.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct OutputArgs {
    /// Print compact JSON on one line instead of pretty JSON or a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Cluster-wide filter rules
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Quarantined messages on every node
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
    /// Per-user allow and deny lists, cluster-wide
    #[command(subcommand)]
    Lists(super::lists::ListsCommand),
    /// Mesh members, liveness and health (GET /api/v1/cluster)
    Cluster(OutputArgs),
    /// Mail counters per node and in total (GET /api/v1/stats); `stats series`: one
    /// counter per minute, hour or day (GET /api/v1/stats/series)
    Stats(super::series::StatsArgs),
    /// Where a message went, across the mesh (GET /api/v1/trace)
    Trace(TraceArgs),
    /// Relay queue of a node
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Take a node out of DNS and new traffic, or back
    #[command(subcommand)]
    Node(NodeCommand),
    /// Whether the node accepts mail (GET /healthz, no token needed)
    Health(OutputArgs),
    /// Learn messages as spam or ham, once for the whole mesh (POST /api/v1/learn/CLASS)
    Learn(LearnArgs),
    /// Forget learned messages everywhere, by digest (DELETE /api/v1/learn/DIGEST)
    Forget(ForgetArgs),
    /// The Bayesian classifier: messages learned, tokens, each node's share (GET /api/v1/bayes)
    Bayes(OutputArgs),
    /// Score a message without storing or relaying it (POST /api/v1/classify)
    Classify(ClassifyArgs),
    /// Cluster-wide settings
    #[command(subcommand)]
    Settings(SettingsCommand),
    /// Quarantine digests for the recipients: status, a run now, a new link key
    #[command(subcommand)]
    Digest(DigestCommand),
}

/// What a message is learned as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Class {
    /// Unwanted mail
    Spam,
    /// Wanted mail
    Ham,
}

impl Class {
    /// The class as the API spells it in paths and queries.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Spam => "spam",
            Class::Ham => "ham",
        }
    }
}

#[derive(Debug, Args)]
pub struct LearnArgs {
    /// What the messages are
    #[arg(value_enum)]
    pub class: Class,
    /// Messages to learn: a message file (.eml), an mbox, a maildir directory, or `-` for stdin
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Also print one line per message: outcome, digest (for `forget`) and where it came from
    #[arg(long, short)]
    pub verbose: bool,
    /// `--json`, which may follow the command.
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Digests of learned messages, as `learn --verbose` printed them
    #[arg(required = true, value_name = "DIGEST")]
    pub digests: Vec<String>,
    /// `--json`, which may follow the command.
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// The message: a message file, an mbox holding one message, or `-` for stdin
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Envelope sender to score it with
    #[arg(long, value_name = "ADDR")]
    pub from: Option<String>,
    /// Envelope recipient to score it with
    #[arg(long, value_name = "ADDR")]
    pub rcpt: Option<String>,
    /// Client IP address to score it with (DNSBL, SPF)
    #[arg(long, value_name = "IP")]
    pub ip: Option<String>,
    /// HELO/EHLO name to score it with
    #[arg(long, value_name = "NAME")]
    pub helo: Option<String>,
    /// The client's reverse name (`unknown` for none); without it the node looks it up
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// `--json`, which may follow the command.
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// Spam thresholds and symbol weights (GET/PUT /api/v1/settings/spam)
    Spam(SpamSettingsArgs),
    /// Quarantine copies (GET/PUT /api/v1/settings/quarantine)
    Quarantine(QuarantineSettingsArgs),
    /// Digest schedule, link lifetime, public URL and sender (GET/PUT /api/v1/settings/digest)
    Digest(QuarantineSettingsArgs),
}

/// `mxctl digest …`.
#[derive(Debug, Subcommand)]
pub enum DigestCommand {
    /// This node's digest status: the due period, whether it is done, why it waits (GET /api/v1/digest)
    Status(OutputArgs),
    /// Send the due digests now, on every node (POST /api/v1/digest/run)
    Run(OutputArgs),
    /// Make a new link key; links signed with the old one work until they expire (POST /api/v1/digest/rotate)
    Rotate(OutputArgs),
}

/// `settings quarantine|digest` shows the settings; `… set` replaces them.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct QuarantineSettingsArgs {
    /// `get` shows the settings, `set` replaces them; absent: as `get`.
    #[command(subcommand)]
    pub action: Option<SpamSettingsAction>,
    /// `--json`, which may follow the command.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `settings spam` shows the settings; `settings spam set` replaces them.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SpamSettingsArgs {
    /// `get` shows the settings, `set` replaces them; absent: as `get`.
    #[command(subcommand)]
    pub action: Option<SpamSettingsAction>,
    /// `--json`, which may follow the command.
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum SpamSettingsAction {
    /// Show thresholds and symbol weights (the default)
    Get(OutputArgs),
    /// Replace thresholds and symbol weights (PUT /api/v1/settings/spam)
    Set {
        #[command(flatten)]
        settings: SettingsInput,
    },
}

/// The settings JSON, from a file, stdin or the command line; exactly one.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct SettingsInput {
    /// Read the settings JSON from FILE; `-` reads stdin
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The settings JSON itself, e.g. --json '{"tag":5,"weights":{"DATE_IN_PAST":0.5}}'
    #[arg(long = "json", value_name = "SETTINGS_JSON")]
    pub inline: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// List every rule (GET /api/v1/rules)
    List(OutputArgs),
    /// Show one rule (GET /api/v1/rules/ID)
    Get {
        /// Rule id
        id: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Create a rule (POST /api/v1/rules); the server assigns an id when absent
    Add {
        #[command(flatten)]
        rule: RuleInput,
    },
    /// Replace a rule (PUT /api/v1/rules/ID)
    Update {
        /// Rule id
        id: String,
        #[command(flatten)]
        rule: RuleInput,
    },
    /// Delete a rule (DELETE /api/v1/rules/ID)
    Delete {
        /// Rule id
        id: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Audit trail of rule changes (GET /api/v1/rules/history)
    History(OutputArgs),
    /// Write every rule as a JSON array ordered by id (stdout, or --out FILE)
    Export {
        /// Write the JSON to FILE instead of stdout
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Create or update the rules of a JSON array (as `rules export` writes) by id;
    /// rules the file does not name are left alone; importing twice changes nothing
    Import {
        /// The JSON file; `-` reads stdin
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Show what would be created, updated or left unchanged; change nothing
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        output: OutputArgs,
    },
}

/// The rule JSON, from a file, stdin or the command line; exactly one.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct RuleInput {
    /// Read the rule JSON from FILE; `-` reads stdin
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The rule JSON itself, e.g. --json '{"name":"…","when":…,"action":"reject"}'
    #[arg(long = "json", value_name = "RULE_JSON")]
    pub inline: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// Search quarantined messages on every node (GET /api/v1/quarantine)
    List {
        #[command(flatten)]
        filter: QuarantineFilter,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show one entry's metadata (GET /api/v1/quarantine/ID)
    Show {
        /// Quarantine entry id
        id: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Fetch the message itself, as raw RFC 5322 bytes (GET /api/v1/quarantine/ID/raw)
    Raw {
        /// Quarantine entry id
        id: String,
        /// Write the message to FILE instead of stdout
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Relay messages on to their recipients (POST /api/v1/quarantine/ID/release): the
    /// entries given, or every quarantined entry a search matches (with progress)
    Release {
        /// Quarantine entry ids
        ids: Vec<String>,
        #[command(flatten)]
        matching: BulkFilter,
        /// Also learn each message as ham (?learn=ham)
        #[arg(long)]
        learn_ham: bool,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Learn the message as spam or ham, from any node (POST /api/v1/quarantine/ID/learn)
    Learn {
        /// Quarantine entry id
        id: String,
        /// What the message is
        #[arg(long, value_enum)]
        class: Class,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Delete messages (DELETE /api/v1/quarantine/ID): the entries given, or every
    /// quarantined entry a search matches (with progress)
    Delete {
        /// Quarantine entry ids
        ids: Vec<String>,
        #[command(flatten)]
        matching: BulkFilter,
        #[command(flatten)]
        output: OutputArgs,
    },
}

/// The search of a bulk `quarantine release|delete` (instead of ids): every quarantined
/// entry matching all the filters given; `--all` matches every quarantined entry.
#[derive(Debug, Default, Clone, Args)]
pub struct BulkFilter {
    /// The search filters a bulk release or delete matches.
    #[command(flatten)]
    pub search: SearchFilters,
    /// Every quarantined entry (no other filter needed)
    #[arg(long)]
    pub all: bool,
}

/// The quarantine search filters of `quarantine list` and of a bulk release or delete;
/// each one given becomes a query parameter of `GET /api/v1/quarantine`.
#[derive(Debug, Default, Clone, Args)]
pub struct SearchFilters {
    /// Envelope sender contains S
    #[arg(long, value_name = "S")]
    pub sender: Option<String>,
    /// A recipient contains R
    #[arg(long, value_name = "R")]
    pub rcpt: Option<String>,
    /// Subject contains S
    #[arg(long, value_name = "S")]
    pub subject: Option<String>,
    /// Only entries held by node N
    #[arg(long, value_name = "N")]
    pub node: Option<String>,
    /// Only entries received at or after T (as the server accepts it)
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
}

/// `quarantine list`: the search filters and paging.
#[derive(Debug, Default, Args)]
pub struct QuarantineFilter {
    /// The search filters, each a query parameter.
    #[command(flatten)]
    pub search: SearchFilters,
    /// At most N entries per page
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Continue from the `next` cursor of a previous page
    #[arg(long, value_name = "C")]
    pub cursor: Option<String>,
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Envelope sender
    #[arg(long, value_name = "S")]
    pub sender: Option<String>,
    /// Envelope recipient
    #[arg(long, value_name = "R")]
    pub rcpt: Option<String>,
    /// Only messages received at or after T (as the server accepts it)
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// `--json`, which may follow the command.
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List the relay queue (GET /api/v1/queue), like `postqueue -p`
    List {
        /// Node whose queue to list; the answering node when absent
        #[arg(long, value_name = "ID")]
        node: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Retry every queued message now (POST /api/v1/queue/flush), like `postqueue -f`
    Flush {
        /// Node whose queue to flush; the answering node when absent
        #[arg(long, value_name = "ID")]
        node: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Take node ID out of DNS and new traffic (POST /api/v1/nodes/ID/drain)
    Drain {
        /// Node id
        id: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Put node ID back into DNS and traffic (POST /api/v1/nodes/ID/undrain)
    Undrain {
        /// Node id
        id: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Drain live node ID, hand its quarantine to other nodes and remove it from the
    /// mesh; prints progress until done (POST /api/v1/nodes/ID/retire, repeated)
    Retire {
        /// Node id
        id: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Declare node ID gone for good: copy holders take its messages over, the rest
    /// show `lost` (POST /api/v1/nodes/ID/forget)
    Forget {
        /// Node id
        id: String,
        #[command(flatten)]
        output: OutputArgs,
    },
}
