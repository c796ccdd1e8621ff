//! The `mxctl` command line and its mapping to admin API calls.
//!
//! Mapping is pure: [`Command::into_plan`] turns parsed arguments into a [`Plan`]
//! without touching the network, so every route can be checked in unit tests.
//! Most commands are one [`Call`] (method, endpoint, body, how to print the
//! answer); `learn` and `forget` are runs of many calls (see `learn`). The inputs
//! it reads are a rule or settings file given with `--file` and the message given
//! to `classify`.
//!
//! `--json` means "machine-readable output" everywhere: compact JSON on one line
//! instead of pretty JSON or a table. The exceptions are `rules add`,
//! `rules update` and `settings spam set`, where it carries the JSON to send
//! (`--json '{…}'`); there the output switch is given before the group:
//! `mxctl --json rules add --json '{…}'`.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::Value;

use super::client::{ApiClient, ApiResponse, Body, ClientError, Endpoint, Method};
use super::mailbox::{self, MessageInputError};

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
    /// Mail counters per node and in total (GET /api/v1/stats)
    Stats(OutputArgs),
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
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Digests of learned messages, as `learn --verbose` printed them
    #[arg(required = true, value_name = "DIGEST")]
    pub digests: Vec<String>,
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
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// Spam thresholds and symbol weights (GET/PUT /api/v1/settings/spam)
    Spam(SpamSettingsArgs),
    /// Quarantine copies (GET/PUT /api/v1/settings/quarantine)
    Quarantine(QuarantineSettingsArgs),
}

/// `settings quarantine` shows the settings; `settings quarantine set` replaces them.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct QuarantineSettingsArgs {
    #[command(subcommand)]
    pub action: Option<SpamSettingsAction>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `settings spam` shows the settings; `settings spam set` replaces them.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SpamSettingsArgs {
    #[command(subcommand)]
    pub action: Option<SpamSettingsAction>,
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
    /// The settings JSON itself, e.g. --json '{"thresholds":{"tag":5,…},…}'
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
    /// Relay the message on to its recipients (POST /api/v1/quarantine/ID/release)
    Release {
        /// Quarantine entry id
        id: String,
        /// Also learn the message as ham (?learn=ham)
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
    /// Delete the message (DELETE /api/v1/quarantine/ID)
    Delete {
        /// Quarantine entry id
        id: String,
        #[command(flatten)]
        output: OutputArgs,
    },
}

/// Search filters for `quarantine list`; each one given becomes a query parameter.
#[derive(Debug, Default, Args)]
pub struct QuarantineFilter {
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

/// How a successful response is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// JSON to stdout; pretty unless `compact`.
    Json { compact: bool },
    /// The body bytes unchanged, to stdout or to a file.
    Raw { out: Option<PathBuf> },
    /// A readable view of the JSON answer; with `json`, that JSON compact instead.
    Table { view: View, json: bool },
}

/// The readable views of JSON answers (see `tables`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// `GET /api/v1/bayes`: totals, readiness, one row per node.
    Bayes,
    /// `POST /api/v1/classify`: score, verdict, Bayes, one row per symbol.
    Classify,
    /// `GET /api/v1/quarantine`: one row per entry, with its spam score.
    QuarantineList,
    /// `GET /api/v1/quarantine/ID`: the entry's fields, then its symbols.
    QuarantineEntry,
    /// `POST /api/v1/nodes/ID/forget`: what became of the node's messages.
    Forget,
    /// `GET /api/v1/lists`: one row per allow/deny entry.
    Lists,
}

/// One admin API call, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: Method,
    pub endpoint: Endpoint,
    /// Request body: JSON for rules and settings, a raw message for classify.
    pub body: Option<Body>,
    pub output: Output,
}

/// What one `mxctl` invocation does.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// One admin API call.
    Call(Call),
    /// Learn every message of some files (one call per message).
    Learn(LearnPlan),
    /// Forget learned messages (one call per digest).
    Forget(ForgetPlan),
    /// Export the rule book as JSON.
    RulesExport(super::rules_io::ExportPlan),
    /// Import a rule book file.
    RulesImport(super::rules_io::ImportPlan),
    /// Retire a node, polling its progress until it is done.
    Retire(RetirePlan),
}

/// `mxctl node retire ID`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetirePlan {
    /// The node to retire.
    pub id: String,
    /// Print each progress report as compact JSON instead of a line of text.
    pub json: bool,
}

/// `mxctl learn CLASS FILE…`.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnPlan {
    /// What every message is learned as.
    pub class: Class,
    /// The files, mboxes and maildirs, in the order given.
    pub files: Vec<PathBuf>,
    /// Also print one line per message.
    pub verbose: bool,
    /// Print compact JSON (one object per line) instead of text and a table.
    pub json: bool,
}

/// `mxctl forget DIGEST…`.
#[derive(Debug, Clone, PartialEq)]
pub struct ForgetPlan {
    /// The digests, in the order given.
    pub digests: Vec<String>,
    /// Print each answer as compact JSON instead of a line of text.
    pub json: bool,
}

impl Call {
    pub(crate) fn new(method: Method, endpoint: Endpoint, output: OutputArgs) -> Self {
        Call {
            method,
            endpoint,
            body: None,
            output: Output::Json {
                compact: output.json,
            },
        }
    }

    pub(crate) fn with_body(mut self, body: Body) -> Self {
        self.body = Some(body);
        self
    }

    pub(crate) fn table(
        method: Method,
        endpoint: Endpoint,
        view: View,
        output: OutputArgs,
    ) -> Self {
        Call {
            method,
            endpoint,
            body: None,
            output: Output::Table {
                view,
                json: output.json,
            },
        }
    }

    /// Sends the call with the verb it names.
    pub fn send(&self, client: &ApiClient) -> Result<ApiResponse, ClientError> {
        client.send(self.method, &self.endpoint, self.body.as_ref())
    }
}

/// Bad local input: a rule or settings that cannot be read or are not JSON, or a
/// message to classify that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {what} from {source_name}: {error}")]
    Read {
        what: &'static str,
        source_name: String,
        error: std::io::Error,
    },
    #[error("{what} from {source_name} is larger than {max_bytes} bytes")]
    TooLarge {
        what: &'static str,
        source_name: String,
        max_bytes: u64,
    },
    #[error("{what} from {source_name} is not valid JSON: {error}")]
    NotJson {
        what: &'static str,
        source_name: String,
        error: serde_json::Error,
    },
    #[error(transparent)]
    Message(#[from] MessageInputError),
    #[error("{file} holds no message")]
    NoMessage { file: String },
    #[error("{file} holds more than one message; classify takes one")]
    SeveralMessages { file: String },
}

impl Cli {
    /// Maps the command line to its plan; a `--json` before the group makes the
    /// output machine-readable whatever the command.
    pub fn into_plan(self) -> Result<Plan, InputError> {
        let mut plan = self.command.into_plan()?;
        if self.json {
            match &mut plan {
                Plan::Call(call) => match &mut call.output {
                    Output::Json { compact } => *compact = true,
                    Output::Table { json, .. } => *json = true,
                    Output::Raw { .. } => {}
                },
                Plan::Learn(learn) => learn.json = true,
                Plan::Forget(forget) => forget.json = true,
                Plan::Retire(retire) => retire.json = true,
                Plan::RulesImport(import) => import.json = true,
                Plan::RulesExport(_) => {}
            }
        }
        Ok(plan)
    }
}

impl Command {
    /// Maps the command to what it does. Reads the JSON of `rules add`,
    /// `rules update` and `settings spam set` and checks that it is JSON, and the
    /// message of `classify`; everything else is pure.
    pub fn into_plan(self) -> Result<Plan, InputError> {
        let call = match self {
            Command::Learn(args) => {
                return Ok(Plan::Learn(LearnPlan {
                    class: args.class,
                    files: args.files,
                    verbose: args.verbose,
                    json: args.output.json,
                }));
            }
            Command::Forget(args) => {
                return Ok(Plan::Forget(ForgetPlan {
                    digests: args.digests,
                    json: args.output.json,
                }));
            }
            Command::Rules(RulesCommand::Export { out }) => {
                return Ok(Plan::RulesExport(super::rules_io::ExportPlan { out }));
            }
            Command::Rules(RulesCommand::Import {
                file,
                dry_run,
                output,
            }) => {
                return Ok(Plan::RulesImport(super::rules_io::ImportPlan {
                    file,
                    dry_run,
                    json: output.json,
                }));
            }
            Command::Node(NodeCommand::Retire { id, output }) => {
                return Ok(Plan::Retire(RetirePlan {
                    id,
                    json: output.json,
                }));
            }
            other => other.into_call()?,
        };
        Ok(Plan::Call(call))
    }

    /// The one call of a command that is one call.
    fn into_call(self) -> Result<Call, InputError> {
        use Method::{Delete, Get, Post, Put};
        let api = Endpoint::api;
        let call = match self {
            Command::Rules(command) => match command {
                RulesCommand::List(output) => Call::new(Get, api(&["rules"]), output),
                RulesCommand::Get { id, output } => Call::new(Get, api(&["rules", &id]), output),
                RulesCommand::Add { rule } => {
                    Call::new(Post, api(&["rules"]), OutputArgs::default())
                        .with_body(Body::Json(rule.load()?))
                }
                RulesCommand::Update { id, rule } => {
                    Call::new(Put, api(&["rules", &id]), OutputArgs::default())
                        .with_body(Body::Json(rule.load()?))
                }
                RulesCommand::Delete { id, output } => {
                    Call::new(Delete, api(&["rules", &id]), output)
                }
                RulesCommand::History(output) => Call::new(Get, api(&["rules", "history"]), output),
                RulesCommand::Export { .. } | RulesCommand::Import { .. } => {
                    unreachable!("into_plan maps rules export and import to runs")
                }
            },
            Command::Quarantine(command) => match command {
                QuarantineCommand::List { filter, output } => {
                    Call::table(Get, filter.endpoint(), View::QuarantineList, output)
                }
                QuarantineCommand::Show { id, output } => Call::table(
                    Get,
                    api(&["quarantine", &id]),
                    View::QuarantineEntry,
                    output,
                ),
                QuarantineCommand::Raw { id, out } => Call {
                    method: Get,
                    endpoint: api(&["quarantine", &id, "raw"]),
                    body: None,
                    output: Output::Raw { out },
                },
                QuarantineCommand::Release {
                    id,
                    learn_ham,
                    output,
                } => Call::new(
                    Post,
                    api(&["quarantine", &id, "release"])
                        .with_query("learn", learn_ham.then_some(Class::Ham.as_str())),
                    output,
                ),
                QuarantineCommand::Learn { id, class, output } => Call::new(
                    Post,
                    api(&["quarantine", &id, "learn"]).with_query("class", Some(class.as_str())),
                    output,
                ),
                QuarantineCommand::Delete { id, output } => {
                    Call::new(Delete, api(&["quarantine", &id]), output)
                }
            },
            Command::Cluster(output) => Call::new(Get, api(&["cluster"]), output),
            Command::Stats(output) => Call::new(Get, api(&["stats"]), output),
            Command::Trace(args) => {
                let endpoint = api(&["trace"])
                    .with_query("sender", args.sender)
                    .with_query("rcpt", args.rcpt)
                    .with_query("since", args.since);
                Call::new(Get, endpoint, args.output)
            }
            Command::Queue(command) => match command {
                QueueCommand::List { node, output } => {
                    Call::new(Get, api(&["queue"]).with_query("node", node), output)
                }
                QueueCommand::Flush { node, output } => Call::new(
                    Post,
                    api(&["queue", "flush"]).with_query("node", node),
                    output,
                ),
            },
            Command::Node(command) => match command {
                NodeCommand::Drain { id, output } => {
                    Call::new(Post, api(&["nodes", &id, "drain"]), output)
                }
                NodeCommand::Undrain { id, output } => {
                    Call::new(Post, api(&["nodes", &id, "undrain"]), output)
                }
                NodeCommand::Forget { id, output } => {
                    Call::table(Post, api(&["nodes", &id, "forget"]), View::Forget, output)
                }
                NodeCommand::Retire { .. } => unreachable!("into_plan maps retire to a run"),
            },
            Command::Health(output) => Call::new(Get, Endpoint::public(&["healthz"]), output),
            Command::Lists(command) => command.into_call(),
            Command::Bayes(output) => Call::table(Get, api(&["bayes"]), View::Bayes, output),
            Command::Classify(args) => args.into_call()?,
            Command::Settings(SettingsCommand::Spam(args)) => {
                let endpoint = api(&["settings", "spam"]);
                match args.action {
                    None => Call::new(Get, endpoint, args.output),
                    Some(SpamSettingsAction::Get(output)) => Call::new(Get, endpoint, output),
                    Some(SpamSettingsAction::Set { settings }) => {
                        Call::new(Put, endpoint, OutputArgs::default())
                            .with_body(Body::Json(settings.load()?))
                    }
                }
            }
            Command::Settings(SettingsCommand::Quarantine(args)) => {
                let endpoint = api(&["settings", "quarantine"]);
                match args.action {
                    None => Call::new(Get, endpoint, args.output),
                    Some(SpamSettingsAction::Get(output)) => Call::new(Get, endpoint, output),
                    Some(SpamSettingsAction::Set { settings }) => {
                        Call::new(Put, endpoint, OutputArgs::default())
                            .with_body(Body::Json(settings.load()?))
                    }
                }
            }
            Command::Learn(_) | Command::Forget(_) => {
                unreachable!("into_plan maps learn and forget to runs")
            }
        };
        Ok(call)
    }
}

impl ClassifyArgs {
    /// Reads the one message and builds the call with the envelope as the query.
    fn into_call(self) -> Result<Call, InputError> {
        let endpoint = Endpoint::api(&["classify"])
            .with_query("from", self.from)
            .with_query("rcpt", self.rcpt)
            .with_query("ip", self.ip)
            .with_query("helo", self.helo);
        let message = read_one_message(&self.file)?;
        Ok(
            Call::table(Method::Post, endpoint, View::Classify, self.output)
                .with_body(Body::Message(message)),
        )
    }
}

/// The single message in `path` (a message file, an mbox of one, or stdin).
fn read_one_message(path: &Path) -> Result<Vec<u8>, InputError> {
    let file = || {
        if path.as_os_str() == "-" {
            "stdin".to_string()
        } else {
            path.display().to_string()
        }
    };
    let mut items = mailbox::messages(path);
    let message = items
        .next()
        .ok_or_else(|| InputError::NoMessage { file: file() })??;
    if items.next().is_some() {
        return Err(InputError::SeveralMessages { file: file() });
    }
    Ok(message.bytes)
}

impl QuarantineFilter {
    fn endpoint(self) -> Endpoint {
        Endpoint::api(&["quarantine"])
            .with_query("sender", self.sender)
            .with_query("rcpt", self.rcpt)
            .with_query("subject", self.subject)
            .with_query("node", self.node)
            .with_query("since", self.since)
            .with_query("limit", self.limit)
            .with_query("cursor", self.cursor)
    }
}

impl RuleInput {
    /// Reads the rule and parses it, so a typo is reported against its file
    /// before anything is sent. The server still validates the rule itself.
    fn load(self) -> Result<Value, InputError> {
        load_json("rule", self.file, self.inline)
    }
}

impl SettingsInput {
    /// Reads the settings and parses them; the server validates their contents.
    fn load(self) -> Result<Value, InputError> {
        load_json("settings", self.file, self.inline)
    }
}

/// JSON from `--json TEXT` or `--file FILE` (`-`: stdin), parsed; `what` names
/// it in errors.
fn load_json(
    what: &'static str,
    file: Option<PathBuf>,
    inline: Option<String>,
) -> Result<Value, InputError> {
    let (source_name, text) = match (file, inline) {
        (_, Some(inline)) => ("--json".to_string(), inline),
        (Some(path), None) if path.as_os_str() == "-" => (
            "stdin".to_string(),
            read_bounded(what, "stdin", std::io::stdin())?,
        ),
        (Some(path), None) => {
            let name = path.display().to_string();
            let file = std::fs::File::open(&path).map_err(|error| InputError::Read {
                what,
                source_name: name.clone(),
                error,
            })?;
            (name.clone(), read_bounded(what, &name, file)?)
        }
        (None, None) => unreachable!("clap requires --file or --json"),
    };
    serde_json::from_str(&text).map_err(|error| InputError::NotJson {
        what,
        source_name,
        error,
    })
}

fn read_bounded(
    what: &'static str,
    source_name: &str,
    reader: impl std::io::Read,
) -> Result<String, InputError> {
    let mut text = String::new();
    reader
        .take(JSON_INPUT_MAX_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|error| InputError::Read {
            what,
            source_name: source_name.to_string(),
            error,
        })?;
    if text.len() as u64 > JSON_INPUT_MAX_BYTES {
        return Err(InputError::TooLarge {
            what,
            source_name: source_name.to_string(),
            max_bytes: JSON_INPUT_MAX_BYTES,
        });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    /// Parses an mxctl command line (without the program name) into its plan.
    fn parse(args: &[&str]) -> (Plan, ApiClient) {
        let argv = std::iter::once("mxctl").chain(args.iter().copied());
        let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let client = ApiClient::new(&cli.url, cli.token.clone()).unwrap();
        (cli.into_plan().unwrap(), client)
    }

    /// Parses an mxctl command line (without the program name) into its call and URL.
    fn plan(args: &[&str]) -> (Call, String) {
        let (Plan::Call(call), client) = parse(args) else {
            panic!("{args:?} is not one call");
        };
        let url = client.url(&call.endpoint).to_string();
        (call, url)
    }

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_maps_to_its_route() {
        let base = "http://127.0.0.1:8025";
        let cases: &[(&[&str], Method, &str)] = &[
            (&["rules", "list"], Method::Get, "/api/v1/rules"),
            (&["rules", "get", "r-1"], Method::Get, "/api/v1/rules/r-1"),
            (
                &["rules", "add", "--json", "{}"],
                Method::Post,
                "/api/v1/rules",
            ),
            (
                &["rules", "update", "r-1", "--json", "{}"],
                Method::Put,
                "/api/v1/rules/r-1",
            ),
            (
                &["rules", "delete", "r-1"],
                Method::Delete,
                "/api/v1/rules/r-1",
            ),
            (&["rules", "history"], Method::Get, "/api/v1/rules/history"),
            (&["quarantine", "list"], Method::Get, "/api/v1/quarantine"),
            (
                &["quarantine", "show", "q1"],
                Method::Get,
                "/api/v1/quarantine/q1",
            ),
            (
                &["quarantine", "raw", "q1"],
                Method::Get,
                "/api/v1/quarantine/q1/raw",
            ),
            (
                &["quarantine", "release", "q1"],
                Method::Post,
                "/api/v1/quarantine/q1/release",
            ),
            (
                &["quarantine", "delete", "q1"],
                Method::Delete,
                "/api/v1/quarantine/q1",
            ),
            (&["cluster"], Method::Get, "/api/v1/cluster"),
            (&["stats"], Method::Get, "/api/v1/stats"),
            (&["trace"], Method::Get, "/api/v1/trace"),
            (&["queue", "list"], Method::Get, "/api/v1/queue"),
            (&["queue", "flush"], Method::Post, "/api/v1/queue/flush"),
            (
                &["node", "drain", "mx2"],
                Method::Post,
                "/api/v1/nodes/mx2/drain",
            ),
            (
                &["node", "undrain", "mx2"],
                Method::Post,
                "/api/v1/nodes/mx2/undrain",
            ),
            (&["health"], Method::Get, "/healthz"),
            (
                &["quarantine", "learn", "q1", "--class", "spam"],
                Method::Post,
                "/api/v1/quarantine/q1/learn?class=spam",
            ),
            (
                &["quarantine", "release", "q1", "--learn-ham"],
                Method::Post,
                "/api/v1/quarantine/q1/release?learn=ham",
            ),
            (&["bayes"], Method::Get, "/api/v1/bayes"),
            (&["settings", "spam"], Method::Get, "/api/v1/settings/spam"),
            (
                &["settings", "spam", "get"],
                Method::Get,
                "/api/v1/settings/spam",
            ),
            (
                &["settings", "spam", "set", "--json", "{}"],
                Method::Put,
                "/api/v1/settings/spam",
            ),
        ];
        for (args, method, path) in cases {
            let (call, url) = plan(args);
            assert_eq!(call.method, *method, "{args:?}");
            assert_eq!(url, format!("{base}{path}"), "{args:?}");
            assert_eq!(call.endpoint.authenticated, *path != "/healthz", "{args:?}");
        }
    }

    #[test]
    fn quarantine_filters_become_query_parameters_in_order() {
        let (_, url) = plan(&[
            "quarantine",
            "list",
            "--sender",
            "spam@bad.example",
            "--rcpt",
            "bob@example.com",
            "--subject",
            "win big",
            "--node",
            "mx2",
            "--since",
            "2024-05-01T00:00:00Z",
            "--limit",
            "20",
            "--cursor",
            "c/1",
        ]);
        assert_eq!(
            url,
            "http://127.0.0.1:8025/api/v1/quarantine?sender=spam%40bad.example&rcpt=bob%40example.com\
             &subject=win+big&node=mx2&since=2024-05-01T00%3A00%3A00Z&limit=20&cursor=c%2F1"
        );
    }

    #[test]
    fn trace_and_queue_queries() {
        let (_, url) = plan(&["trace", "--rcpt", "bob@example.com", "--since", "1h"]);
        assert_eq!(
            url,
            "http://127.0.0.1:8025/api/v1/trace?rcpt=bob%40example.com&since=1h"
        );
        let (_, url) = plan(&["queue", "flush", "--node", "mx3"]);
        assert_eq!(url, "http://127.0.0.1:8025/api/v1/queue/flush?node=mx3");
    }

    #[test]
    fn url_flag_may_follow_the_command() {
        let (_, url) = plan(&["stats", "--url", "http://10.0.0.11:9000"]);
        assert_eq!(url, "http://10.0.0.11:9000/api/v1/stats");
    }

    #[test]
    fn json_flag_means_compact_before_or_after_the_command() {
        for args in [
            &["--json", "cluster"][..],
            &["cluster", "--json"],
            &["rules", "get", "r1", "--json"],
        ] {
            let (call, _) = plan(args);
            assert_eq!(call.output, Output::Json { compact: true }, "{args:?}");
        }
        let (call, _) = plan(&["cluster"]);
        assert_eq!(call.output, Output::Json { compact: false });
    }

    #[test]
    fn rule_json_becomes_the_body() {
        let (call, _) = plan(&[
            "rules",
            "add",
            "--json",
            r#"{"name":"block","action":"reject"}"#,
        ]);
        assert_eq!(
            call.body,
            Some(Body::Json(
                serde_json::json!({"name": "block", "action": "reject"})
            ))
        );
        let (call, _) = plan(&[
            "--json",
            "rules",
            "update",
            "r-9",
            "--json",
            r#"{"priority":5}"#,
        ]);
        assert_eq!(
            call.body,
            Some(Body::Json(serde_json::json!({"priority": 5})))
        );
    }

    #[test]
    fn rule_input_needs_exactly_one_source() {
        assert!(Cli::try_parse_from(["mxctl", "rules", "add"]).is_err());
        assert!(
            Cli::try_parse_from(["mxctl", "rules", "add", "--file", "r.json", "--json", "{}"])
                .is_err()
        );
    }

    #[test]
    fn invalid_rule_json_is_refused_before_sending() {
        let cli = Cli::try_parse_from(["mxctl", "rules", "add", "--json", "{name:"]).unwrap();
        let error = cli.into_plan().unwrap_err().to_string();
        assert!(
            error.starts_with("rule from --json is not valid JSON"),
            "{error}"
        );
    }

    #[test]
    fn rule_file_errors_name_the_file() {
        let cli =
            Cli::try_parse_from(["mxctl", "rules", "add", "--file", "/nonexistent/rule.json"])
                .unwrap();
        let error = cli.into_plan().unwrap_err().to_string();
        assert!(error.contains("/nonexistent/rule.json"), "{error}");
    }

    #[test]
    fn raw_writes_bytes_not_json() {
        let (call, _) = plan(&["quarantine", "raw", "q1", "--out", "msg.eml"]);
        assert_eq!(
            call.output,
            Output::Raw {
                out: Some(PathBuf::from("msg.eml"))
            }
        );
    }

    #[test]
    fn settings_json_becomes_the_body_and_bad_json_is_named() {
        let (call, _) = plan(&[
            "settings",
            "spam",
            "set",
            "--json",
            r#"{"thresholds":{"tag":4}}"#,
        ]);
        assert_eq!(
            call.body,
            Some(Body::Json(serde_json::json!({"thresholds": {"tag": 4}})))
        );
        assert_eq!(call.output, Output::Json { compact: false });
        let cli =
            Cli::try_parse_from(["mxctl", "settings", "spam", "set", "--json", "{tag"]).unwrap();
        let error = cli.into_plan().unwrap_err().to_string();
        assert!(
            error.starts_with("settings from --json is not valid JSON"),
            "{error}"
        );
        assert!(Cli::try_parse_from(["mxctl", "settings", "spam", "set"]).is_err());
    }

    #[test]
    fn bayes_is_a_table_unless_json_is_asked_for() {
        let (call, _) = plan(&["bayes"]);
        assert_eq!(
            call.output,
            Output::Table {
                view: View::Bayes,
                json: false
            }
        );
        for args in [&["bayes", "--json"][..], &["--json", "bayes"]] {
            let (call, _) = plan(args);
            assert_eq!(
                call.output,
                Output::Table {
                    view: View::Bayes,
                    json: true
                },
                "{args:?}"
            );
        }
    }

    #[test]
    fn learn_and_forget_are_runs_with_their_inputs() {
        let (plan, _) = parse(&["learn", "spam", "a.mbox", "Maildir", "-"]);
        assert_eq!(
            plan,
            Plan::Learn(LearnPlan {
                class: Class::Spam,
                files: ["a.mbox", "Maildir", "-"].map(PathBuf::from).to_vec(),
                verbose: false,
                json: false,
            })
        );
        let (plan, _) = parse(&["--json", "learn", "ham", "h.eml"]);
        assert!(matches!(
            plan,
            Plan::Learn(LearnPlan {
                class: Class::Ham,
                json: true,
                ..
            })
        ));
        let (plan, _) = parse(&["forget", "d1", "d2", "--json"]);
        assert_eq!(
            plan,
            Plan::Forget(ForgetPlan {
                digests: vec!["d1".to_string(), "d2".to_string()],
                json: true,
            })
        );
        assert!(Cli::try_parse_from(["mxctl", "learn", "spam"]).is_err());
        assert!(Cli::try_parse_from(["mxctl", "learn", "eggs", "a.eml"]).is_err());
        assert!(Cli::try_parse_from(["mxctl", "forget"]).is_err());
        assert!(Cli::try_parse_from(["mxctl", "quarantine", "learn", "q1"]).is_err());
    }

    fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
        let path = std::env::temp_dir().join(format!("mxctl-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn classify_sends_the_message_and_the_envelope() {
        let message = b"Subject: hi\r\n\r\nbody\r\n";
        let path = temp_file("classify.eml", message);
        let (call, url) = plan(&[
            "classify",
            path.to_str().unwrap(),
            "--from",
            "a@b.example",
            "--rcpt",
            "c@d.example",
            "--ip",
            "192.0.2.1",
            "--helo",
            "mail.b.example",
        ]);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(call.method, Method::Post);
        assert_eq!(
            url,
            "http://127.0.0.1:8025/api/v1/classify?from=a%40b.example&rcpt=c%40d.example\
             &ip=192.0.2.1&helo=mail.b.example"
        );
        assert_eq!(call.body, Some(Body::Message(message.to_vec())));
        assert_eq!(
            call.output,
            Output::Table {
                view: View::Classify,
                json: false
            }
        );
    }

    #[test]
    fn classify_takes_exactly_one_usable_message() {
        let cases: [(&str, &[u8], &str); 3] = [
            (
                "two.mbox",
                b"From a\nSubject: 1\n\nx\nFrom b\nSubject: 2\n\ny\n",
                "holds more than one message; classify takes one",
            ),
            ("empty.eml", b"", "holds no message"),
            ("blank.eml", b"\n\n", "is empty: no message in it"),
        ];
        for (name, bytes, expected) in cases {
            let path = temp_file(name, bytes);
            let cli = Cli::try_parse_from(["mxctl", "classify", path.to_str().unwrap()]).unwrap();
            let error = cli.into_plan().unwrap_err().to_string();
            std::fs::remove_file(&path).unwrap();
            assert_eq!(error, format!("{} {expected}", path.display()), "{name}");
        }
        let path = temp_file("one.mbox", b"From a\nSubject: 1\n\nx\n");
        let (call, _) = plan(&["classify", path.to_str().unwrap()]);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            call.body,
            Some(Body::Message(b"Subject: 1\n\nx\n".to_vec()))
        );
    }
}
