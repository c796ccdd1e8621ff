//! The `mxctl` command line and its mapping to admin API calls.
//!
//! Mapping is pure: [`Command::into_call`] turns parsed arguments into a [`Call`]
//! (method, endpoint, body, how to print the answer) without touching the network,
//! so every route can be checked in unit tests. The one input it reads is a rule
//! file given with `--file`.
//!
//! `--json` means "compact output" everywhere except `rules add` and
//! `rules update`, where it carries the rule itself (`--json '{…}'`). There the
//! compact switch is given before the group: `mxctl --json rules add --json '{…}'`.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use super::client::{ApiClient, ApiResponse, ClientError, Endpoint, Method};

/// Where `mxctl` looks when neither `--url` nor `MXMESH_URL` is given: the admin
/// listener of a node on this host with the default config.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8025";
/// Upper bound for a rule file or rule read from stdin; a rule is a few KiB.
pub const RULE_INPUT_MAX_BYTES: u64 = 1024 * 1024;

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
    /// Print compact JSON on one line instead of pretty JSON
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Compact-output switch repeated on each command so it may follow the command.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct OutputArgs {
    /// Print compact JSON on one line instead of pretty JSON
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
}

/// How a successful response is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// JSON to stdout; pretty unless `compact`.
    Json { compact: bool },
    /// The body bytes unchanged, to stdout or to a file.
    Raw { out: Option<PathBuf> },
}

/// One admin API call, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: Method,
    pub endpoint: Endpoint,
    /// JSON request body, for rule create and update.
    pub body: Option<Value>,
    pub output: Output,
}

impl Call {
    fn new(method: Method, endpoint: Endpoint, output: OutputArgs) -> Self {
        Call {
            method,
            endpoint,
            body: None,
            output: Output::Json {
                compact: output.json,
            },
        }
    }

    fn with_body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// Sends the call with the verb it names.
    pub fn send(&self, client: &ApiClient) -> Result<ApiResponse, ClientError> {
        match self.method {
            Method::Get => client.get(&self.endpoint),
            Method::Post => client.post(&self.endpoint, self.body.as_ref()),
            Method::Put => client.put(&self.endpoint, self.body.as_ref().unwrap_or(&Value::Null)),
            Method::Delete => client.delete(&self.endpoint),
        }
    }
}

/// Bad local input: a rule that cannot be read or is not JSON.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read rule from {source_name}: {error}")]
    Read {
        source_name: String,
        error: std::io::Error,
    },
    #[error("rule from {source_name} is larger than {max_bytes} bytes")]
    TooLarge { source_name: String, max_bytes: u64 },
    #[error("rule from {source_name} is not valid JSON: {error}")]
    NotJson {
        source_name: String,
        error: serde_json::Error,
    },
}

impl Cli {
    /// Maps the command line to its call; a `--json` before the group makes the
    /// output compact whatever the command.
    pub fn into_call(self) -> Result<Call, InputError> {
        let mut call = self.command.into_call()?;
        if self.json
            && let Output::Json { compact } = &mut call.output
        {
            *compact = true;
        }
        Ok(call)
    }
}

impl Command {
    /// Maps the command to its admin API call. Reads the rule for `rules add` and
    /// `rules update` and checks that it is JSON; everything else is pure.
    pub fn into_call(self) -> Result<Call, InputError> {
        use Method::{Delete, Get, Post, Put};
        let api = Endpoint::api;
        let call = match self {
            Command::Rules(command) => match command {
                RulesCommand::List(output) => Call::new(Get, api(&["rules"]), output),
                RulesCommand::Get { id, output } => Call::new(Get, api(&["rules", &id]), output),
                RulesCommand::Add { rule } => {
                    Call::new(Post, api(&["rules"]), OutputArgs::default()).with_body(rule.load()?)
                }
                RulesCommand::Update { id, rule } => {
                    Call::new(Put, api(&["rules", &id]), OutputArgs::default())
                        .with_body(rule.load()?)
                }
                RulesCommand::Delete { id, output } => {
                    Call::new(Delete, api(&["rules", &id]), output)
                }
                RulesCommand::History(output) => Call::new(Get, api(&["rules", "history"]), output),
            },
            Command::Quarantine(command) => match command {
                QuarantineCommand::List { filter, output } => {
                    Call::new(Get, filter.endpoint(), output)
                }
                QuarantineCommand::Show { id, output } => {
                    Call::new(Get, api(&["quarantine", &id]), output)
                }
                QuarantineCommand::Raw { id, out } => Call {
                    method: Get,
                    endpoint: api(&["quarantine", &id, "raw"]),
                    body: None,
                    output: Output::Raw { out },
                },
                QuarantineCommand::Release { id, output } => {
                    Call::new(Post, api(&["quarantine", &id, "release"]), output)
                }
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
            },
            Command::Health(output) => Call::new(Get, Endpoint::public(&["healthz"]), output),
        };
        Ok(call)
    }
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
        let (source_name, text) = match (self.file, self.inline) {
            (_, Some(inline)) => ("--json".to_string(), inline),
            (Some(path), None) if path.as_os_str() == "-" => (
                "stdin".to_string(),
                read_bounded("stdin", std::io::stdin())?,
            ),
            (Some(path), None) => {
                let name = path.display().to_string();
                let file = std::fs::File::open(&path).map_err(|error| read_error(&path, error))?;
                (name.clone(), read_bounded(&name, file)?)
            }
            (None, None) => unreachable!("clap requires --file or --json"),
        };
        serde_json::from_str(&text).map_err(|error| InputError::NotJson { source_name, error })
    }
}

fn read_error(path: &Path, error: std::io::Error) -> InputError {
    InputError::Read {
        source_name: path.display().to_string(),
        error,
    }
}

fn read_bounded(source_name: &str, reader: impl std::io::Read) -> Result<String, InputError> {
    let mut text = String::new();
    reader
        .take(RULE_INPUT_MAX_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|error| InputError::Read {
            source_name: source_name.to_string(),
            error,
        })?;
    if text.len() as u64 > RULE_INPUT_MAX_BYTES {
        return Err(InputError::TooLarge {
            source_name: source_name.to_string(),
            max_bytes: RULE_INPUT_MAX_BYTES,
        });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    /// Parses an mxctl command line (without the program name) into its call and URL.
    fn plan(args: &[&str]) -> (Call, String) {
        let argv = std::iter::once("mxctl").chain(args.iter().copied());
        let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let client = ApiClient::new(&cli.url, cli.token.clone()).unwrap();
        let call = cli.into_call().unwrap();
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
            Some(serde_json::json!({"name": "block", "action": "reject"}))
        );
        let (call, _) = plan(&[
            "--json",
            "rules",
            "update",
            "r-9",
            "--json",
            r#"{"priority":5}"#,
        ]);
        assert_eq!(call.body, Some(serde_json::json!({"priority": 5})));
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
        let error = cli.into_call().unwrap_err().to_string();
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
        let error = cli.into_call().unwrap_err().to_string();
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
}
