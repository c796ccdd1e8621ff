//! `mxmesh`: run a node, check a config, run a local demo mesh.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mxmesh_node::config::Config;

/// mimalloc rather than glibc's malloc: the SMTP path allocates and frees a buffer per
/// line and per message from many threads; a profile under load showed ~10% of the node's
/// CPU in glibc malloc/free (BENCHMARKS.md §1).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "mxmesh",
    version,
    about = "A masterless mesh of mail-filtering MX nodes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node in the foreground (SIGTERM or Ctrl-C: drain and stop).
    Node {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Once every listener is bound, write the bound addresses here as JSON
        /// (`{"node","pid","smtp","admin","mesh","dns"}`): lets a config use port 0.
        #[arg(long, value_name = "PATH")]
        ready_file: Option<PathBuf>,
    },
    /// Validate a config file; exits non-zero with a message naming the key at fault.
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Start a local demo: nodes on 127.0.0.1..127.0.0.N, a downstream sink, printed addresses.
    Demo {
        #[arg(long, default_value_t = 3)]
        nodes: u8,
        #[arg(long, value_name = "DIR", default_value = "mxmesh-demo")]
        dir: PathBuf,
        /// Where `scripts/setup.sh` put the SpamAssassin corpus, whose samples the demo
        /// learns at start (default: $MXMESH_CORPUS_DIR, else ~/.cache/mxmesh/corpus)
        #[arg(long, value_name = "DIR")]
        corpus: Option<PathBuf>,
    },
    /// Cluster identity: create the cluster CA, issue node certificates.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// Write a consistent backup (a RocksDB checkpoint) of the node's store into DIR, which
    /// must not exist or be empty. Online: a running node writes it (asked through its admin
    /// API); a stopped node's store is opened directly.
    Backup {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The running node's admin API address (default: `[admin] listen`)
        #[arg(long, value_name = "ADDR")]
        admin: Option<std::net::SocketAddr>,
        /// An admin token (default: the first plain token of `[admin] tokens_file`)
        #[arg(long, env = "MXMESH_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Restore a backup into the node's (empty) data directory; the node must be stopped.
    /// At its next start the node merges what its peers know before serving its quarantine.
    Restore {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
    },
    /// DKIM keys for outbound mail.
    Dkim {
        #[command(subcommand)]
        command: DkimCommand,
    },
    /// Users of the `[submission]` listener.
    Submission {
        #[command(subcommand)]
        command: SubmissionCommand,
    },
    /// Run a downstream SMTP sink that stores every message it gets as DIR/<n>.eml.
    Sink {
        #[arg(long, default_value = "127.0.0.1:2600")]
        listen: std::net::SocketAddr,
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum CaCommand {
    /// Create a cluster CA (the cluster identifier): DIR/ca.pem and DIR/ca.key.
    Init {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Issue a node certificate bound to node ID: OUT/ID.pem and OUT/ID.key.
    Issue {
        #[arg(long = "ca", value_name = "DIR")]
        ca: PathBuf,
        #[arg(long, value_name = "ID")]
        node: String,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum DkimCommand {
    /// Write an Ed25519 key to OUT/SELECTOR.DOMAIN.key and print the DNS TXT record
    /// `SELECTOR._domainkey.DOMAIN` that publishes it (also written to OUT/SELECTOR.DOMAIN.txt).
    Keygen {
        #[arg(long, value_name = "DOMAIN")]
        domain: String,
        #[arg(long, value_name = "SELECTOR")]
        selector: String,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum SubmissionCommand {
    /// Read a password from standard input (its first line) and print the users-file line
    /// `USER $argon2id$…` for it.
    HashUser {
        #[arg(long, value_name = "USER")]
        user: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    mxmesh_node::install_crypto_provider();
    let result = match cli.command {
        Command::Check { config } => check(&config),
        Command::Ca { command } => ca(command),
        Command::Dkim { command } => dkim(command),
        Command::Submission { command } => submission(command),
        Command::Node { config, ready_file } => {
            runtime().and_then(|rt| rt.block_on(run_node(config, ready_file)))
        }
        Command::Demo { nodes, dir, corpus } => {
            runtime().and_then(|rt| rt.block_on(mxmesh_node::demo::run(nodes, dir, corpus)))
        }
        Command::Backup {
            config,
            out,
            admin,
            token,
        } => run_backup(&config, &out, admin, token),
        Command::Restore { config, from } => {
            runtime().and_then(|rt| rt.block_on(run_restore(config, from)))
        }
        Command::Sink { listen, dir } => {
            runtime().and_then(|rt| rt.block_on(run_sink(listen, dir)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mxmesh: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn ca(command: CaCommand) -> anyhow::Result<()> {
    match command {
        CaCommand::Init { out } => {
            mxmesh_node::ca::init(&out)?;
            println!(
                "cluster CA written: {0}/ca.pem, {0}/ca.key (keep ca.key secret)",
                out.display()
            );
        }
        CaCommand::Issue { ca, node, out } => {
            mxmesh_node::ca::issue(&ca, &node, &out)?;
            println!(
                "node certificate for {node} written: {0}/{node}.pem, {0}/{node}.key",
                out.display()
            );
        }
    }
    Ok(())
}

fn submission(command: SubmissionCommand) -> anyhow::Result<()> {
    match command {
        SubmissionCommand::HashUser { user } => {
            if user.is_empty() || user.contains(char::is_whitespace) {
                anyhow::bail!("--user {user:?}: a user name has no spaces and is not empty");
            }
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                anyhow::bail!("no password on standard input");
            }
            let hash = mxmesh_node::outbound::users::hash_password(password.as_bytes())?;
            println!("{user} {hash}");
        }
    }
    Ok(())
}

fn dkim(command: DkimCommand) -> anyhow::Result<()> {
    match command {
        DkimCommand::Keygen {
            domain,
            selector,
            out,
        } => {
            let written = mxmesh_node::dkim::keygen(&domain, &selector, &out)?;
            eprintln!(
                "DKIM key written: {} (keep it secret); publish this TXT record:",
                written.key_path.display()
            );
            println!("{}", written.zone_line());
        }
    }
    Ok(())
}

/// Our own info, and only warnings and errors from the libraries (hickory logs every query).
const DEFAULT_LOG_FILTER: &str =
    "info,hickory_server=warn,hickory_proto=warn,quinn=warn,chitchat=warn";

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MXMESH_LOG")
        .unwrap_or_else(|_| DEFAULT_LOG_FILTER.into());
    // Colours only on a terminal: under systemd stderr is the journal, which stores the
    // escape codes verbatim (and `journalctl -u mxmesh | grep` would miss "node=mx1").
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn check(path: &std::path::Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    mxmesh_node::admin::auth::Tokens::load(&config.admin.tokens_file)
        .map_err(|e| anyhow::anyhow!("admin.tokens_file: {e}"))?;
    if let Some(mesh) = &config.mesh {
        mxmesh_node::mesh::Identity::load_for(
            &config.node.id,
            &mesh.ca_cert,
            &mesh.cert,
            &mesh.key,
        )
        .map_err(|e| anyhow::anyhow!("{}: [mesh]: {e}", path.display()))?;
    }
    println!(
        "{}: ok (node {}, {} domain(s))",
        path.display(),
        config.node.id,
        config.domains.len()
    );
    Ok(())
}

fn run_backup(
    path: &std::path::Path,
    out: &std::path::Path,
    admin: Option<std::net::SocketAddr>,
    token: Option<String>,
) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let target = mxmesh_node::backup::AdminTarget { addr: admin, token };
    let (manifest, taken) = mxmesh_node::backup::backup(&config, out, &target)?;
    let how = match taken {
        mxmesh_node::backup::Taken::Online => "online, by the running node",
        mxmesh_node::backup::Taken::Offline => "offline, from the stopped node's store",
    };
    println!(
        "backup written ({how}): {}",
        mxmesh_node::backup::describe(&manifest, out)
    );
    Ok(())
}

async fn run_restore(path: PathBuf, from: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&path)?;
    let manifest = mxmesh_node::backup::restore(&config, &from).await?;
    println!(
        "restored into {}: {}\nstart the node: it rejoins the mesh and merges what its peers know before serving its quarantine",
        config.node.data_dir.display(),
        mxmesh_node::backup::describe(&manifest, &from)
    );
    Ok(())
}

async fn run_node(path: PathBuf, ready_file: Option<PathBuf>) -> anyhow::Result<()> {
    let config = Config::load(&path)?;
    let node = mxmesh_node::node::start(config).await?;
    if let Some(ready) = &ready_file {
        mxmesh_node::ready::write(ready, &node.bound())?;
    }
    wait_for_signal().await;
    tracing::info!("signal received: draining and stopping");
    if let Some(ready) = &ready_file {
        mxmesh_node::ready::remove(ready);
    }
    node.stop().await;
    Ok(())
}

async fn run_sink(listen: std::net::SocketAddr, dir: PathBuf) -> anyhow::Result<()> {
    let sink = mxmesh_node::sink::start(listen, dir).await?;
    println!("sink listening on {}", sink.addr);
    wait_for_signal().await;
    Ok(())
}

/// SIGTERM or SIGINT.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
