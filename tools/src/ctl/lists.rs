//! `mxctl lists`: the cluster-wide allow/deny list entries (`/api/v1/lists`), a table by
//! default (`--json` for JSON), and adding and removing entries.

use clap::{Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::client::{Body, Endpoint, Method};
use super::commands::{Call, OutputArgs, View};
use super::tables::Table;

/// `mxctl lists …`.
#[derive(Debug, Subcommand)]
pub enum ListsCommand {
    /// List every allow/deny entry (GET /api/v1/lists)
    List(OutputArgs),
    /// Add an entry (POST /api/v1/lists)
    Add {
        /// allow (past the score thresholds) or deny (quarantined)
        kind: Kind,
        /// Sender: user@domain, domain, @domain or *.domain
        sender: String,
        /// Recipients covered: an address, a domain, or * for everyone
        #[arg(default_value = "*")]
        scope: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Remove an entry (DELETE /api/v1/lists/ID)
    Remove {
        /// Entry id
        id: String,
        #[command(flatten)]
        output: OutputArgs,
    },
}

/// The kind of a list entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Let the sender's mail past the score thresholds.
    Allow,
    /// Quarantine the sender's mail.
    Deny,
}

impl ListsCommand {
    /// The one API call of this command.
    pub fn into_call(self) -> Call {
        let api = Endpoint::api;
        match self {
            ListsCommand::List(output) => {
                Call::table(Method::Get, api(&["lists"]), View::Lists, output)
            }
            ListsCommand::Add {
                kind,
                sender,
                scope,
                output,
            } => {
                let kind = match kind {
                    Kind::Allow => "allow",
                    Kind::Deny => "deny",
                };
                let body = json!({"kind": kind, "sender": sender, "scope": scope});
                Call::new(Method::Post, api(&["lists"]), output).with_body(Body::Json(body))
            }
            ListsCommand::Remove { id, output } => {
                Call::new(Method::Delete, api(&["lists", &id]), output)
            }
        }
    }
}

/// The table of `GET /api/v1/lists`: ID, KIND, SENDER, SCOPE; `None` for another shape.
pub fn table(answer: &Value) -> Option<String> {
    let entries = answer.get("entries")?.as_array()?;
    let header = ["ID", "KIND", "SENDER", "SCOPE"].map(String::from).to_vec();
    let mut table = Table::new(header, vec![false; 4]);
    for entry in entries {
        let cell = |k: &str| entry[k].as_str().unwrap_or("-").to_string();
        table.push(vec![
            cell("id"),
            cell("kind"),
            cell("sender"),
            cell("scope"),
        ]);
    }
    Some(table.render())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::commands::Cli;
    use clap::Parser;

    fn call(args: &[&str]) -> Call {
        let mut argv = vec!["mxctl"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).expect("parses");
        match cli.into_plan().expect("a plan") {
            crate::ctl::commands::Plan::Call(call) => call,
            other => panic!("not one call: {other:?}"),
        }
    }

    #[test]
    fn lists_commands_map_to_the_api() {
        let list = call(&["lists", "list"]);
        assert_eq!(
            (list.method, list.endpoint.segments.join("/")),
            (Method::Get, "api/v1/lists".to_string())
        );
        let add = call(&["lists", "add", "allow", "a@x.example", "bob@corp.example"]);
        assert_eq!(add.method, Method::Post);
        assert_eq!(
            add.body,
            Some(Body::Json(
                json!({"kind": "allow", "sender": "a@x.example", "scope": "bob@corp.example"})
            ))
        );
        let everyone = call(&["lists", "add", "deny", "spam.example"]);
        assert_eq!(
            everyone.body,
            Some(Body::Json(
                json!({"kind": "deny", "sender": "spam.example", "scope": "*"})
            ))
        );
        let remove = call(&["lists", "remove", "01ABC"]);
        assert_eq!(
            (remove.method, remove.endpoint.segments.join("/")),
            (Method::Delete, "api/v1/lists/01ABC".to_string())
        );
    }

    #[test]
    fn the_table_has_one_row_per_entry() {
        let answer = json!({"entries": [
            {"id": "01A", "kind": "allow", "sender": "a@x.example", "scope": "*"},
            {"id": "01B", "kind": "deny", "sender": "spam.example", "scope": "corp.example"},
        ]});
        let text = table(&answer).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("ID"), "{text}");
        assert!(
            lines[0].contains("SENDER") && lines[0].contains("SCOPE"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("01A") && lines[1].contains("allow"),
            "{text}"
        );
        assert!(lines[2].contains("spam.example") && lines[2].contains("corp.example"));
        assert!(table(&json!([1])).is_none());
    }
}
