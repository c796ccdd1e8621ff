//! Unit tests of the command-line mapping: every route, checked without a network.

use super::*;
use clap::{CommandFactory as _, Parser as _};

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
        (
            &["settings", "quarantine"],
            Method::Get,
            "/api/v1/settings/quarantine",
        ),
        (
            &["settings", "digest"],
            Method::Get,
            "/api/v1/settings/digest",
        ),
        (
            &["settings", "digest", "set", "--json", "{}"],
            Method::Put,
            "/api/v1/settings/digest",
        ),
        (&["digest", "status"], Method::Get, "/api/v1/digest"),
        (&["digest", "run"], Method::Post, "/api/v1/digest/run"),
        (&["digest", "rotate"], Method::Post, "/api/v1/digest/rotate"),
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
        &["--json", "rules", "get", "r1"][..],
        &["rules", "get", "r1", "--json"],
    ] {
        let (call, _) = plan(args);
        assert_eq!(call.output, Output::Json { compact: true }, "{args:?}");
    }
    let (call, _) = plan(&["rules", "get", "r1"]);
    assert_eq!(call.output, Output::Json { compact: false });
}

#[test]
fn operations_answers_are_tables_unless_json_is_asked() {
    let cases: [(&[&str], View); 7] = [
        (&["cluster"], View::Cluster),
        (&["rules", "list"], View::Rules),
        (&["rules", "history"], View::RulesHistory),
        (&["queue", "list"], View::Queue),
        (&["stats"], View::Stats),
        (&["trace"], View::Trace),
        (&["lists", "list"], View::Lists),
    ];
    for (args, view) in cases {
        let (call, _) = plan(args);
        assert_eq!(call.output, Output::Table { view, json: false }, "{args:?}");
        let with_json: Vec<&str> = std::iter::once("--json")
            .chain(args.iter().copied())
            .collect();
        let (call, _) = plan(&with_json);
        assert_eq!(call.output, Output::Table { view, json: true }, "{args:?}");
    }
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
        Cli::try_parse_from(["mxctl", "rules", "add", "--file", "r.json", "--json", "{}"]).is_err()
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
        Cli::try_parse_from(["mxctl", "rules", "add", "--file", "/nonexistent/rule.json"]).unwrap();
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
    let cli = Cli::try_parse_from(["mxctl", "settings", "spam", "set", "--json", "{tag"]).unwrap();
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
        "--hostname",
        "unknown",
    ]);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(call.method, Method::Post);
    assert_eq!(
        url,
        "http://127.0.0.1:8025/api/v1/classify?from=a%40b.example&rcpt=c%40d.example\
         &ip=192.0.2.1&helo=mail.b.example&hostname=unknown"
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
