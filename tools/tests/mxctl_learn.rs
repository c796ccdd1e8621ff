//! mxctl's learning and classification commands (learn, forget, bayes, classify, spam
//! settings) against the in-test HTTP responder: the requests sent and what is printed.

mod support;

use std::path::PathBuf;
use std::sync::mpsc;

use support::*;

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mxctl-http-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Learns like a server would: "Subject: dup" was learned before, "Subject: bad"
/// is refused, anything else is learned with a digest made of its length.
fn learning_server(seen: &Seen) -> Answer {
    let body = text(&seen.body);
    if body.contains("Subject: dup") {
        json_answer(
            200,
            r#"{"digest":"dup1","learned":false,"reason":"already learned as spam"}"#,
        )
    } else if body.contains("Subject: bad") {
        json_answer(400, r#"{"error":"not a message: no header"}"#)
    } else {
        json_answer(
            200,
            &format!(r#"{{"digest":"d{}","learned":true}}"#, seen.body.len()),
        )
    }
}

fn all_seen(seen: &mpsc::Receiver<Seen>) -> Vec<Seen> {
    seen.try_iter().collect()
}

#[test]
fn learn_sends_every_message_of_an_mbox_a_maildir_and_stdin() {
    let dir = scratch("learn-all");
    let mbox = dir.join("spam.mbox");
    std::fs::write(
        &mbox,
        "From a@example.com Mon Jan  1 00:00:00 2024\n\
         Subject: one\n\n>From the start\n\n\
         From b@example.com Mon Jan  1 00:00:00 2024\n\
         Subject: bad\n\n\
         From c@example.com Mon Jan  1 00:00:00 2024\n\
         Subject: dup\n\nx\n",
    )
    .unwrap();
    let maildir = dir.join("Junk");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    std::fs::write(maildir.join("cur/1:2,S"), "Subject: four\r\n\r\nbody\r\n").unwrap();
    std::fs::write(maildir.join("tmp/2"), "Subject: half written\r\n\r\n").unwrap();
    let (addr, seen) = respond_each(learning_server);
    let output = mxctl(
        addr,
        &[
            "learn",
            "spam",
            mbox.to_str().unwrap(),
            maildir.to_str().unwrap(),
            "-",
        ],
        b"Subject: five\n\nfrom stdin\n",
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(
        text(&output.stdout),
        "CLASS  LEARNED  ALREADY_LEARNED  FAILED\n\
         spam         3                1       1\n"
    );
    let bad = format!("{} message 2 (line 6)", mbox.display());
    assert_eq!(
        stderr,
        format!(
            "mxctl: {bad}: POST http://{addr}/api/v1/learn/spam: HTTP 400 Bad Request: \
             not a message: no header\n\
             mxctl: 1 of 5 messages failed: {bad}\n"
        )
    );
    let requests = all_seen(&seen);
    let bodies: Vec<String> = requests.iter().map(|r| text(&r.body)).collect();
    assert_eq!(
        bodies,
        [
            "Subject: one\n\nFrom the start\n",
            "Subject: bad\n",
            "Subject: dup\n\nx\n",
            "Subject: four\r\n\r\nbody\r\n",
            "Subject: five\n\nfrom stdin\n",
        ]
    );
    for request in &requests {
        assert_eq!(
            (request.method.as_str(), request.target.as_str()),
            ("POST", "/api/v1/learn/spam")
        );
        assert_eq!(
            request.headers.get("content-type").map(String::as_str),
            Some("message/rfc822")
        );
        assert_eq!(
            request.headers.get("authorization").map(String::as_str),
            Some("Bearer s3cret")
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn learn_json_and_verbose_print_digests_and_a_summary_object() {
    let dir = scratch("learn-json");
    let message = dir.join("ham.eml");
    let body = "Subject: hello\n\nhi\n";
    std::fs::write(&message, body).unwrap();
    let (addr, seen) = respond_each(learning_server);
    let output = mxctl(
        addr,
        &["learn", "ham", "--json", "-v", message.to_str().unwrap()],
        b"",
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let lines: Vec<serde_json::Value> = text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            serde_json::json!({"message": message.display().to_string(), "outcome": "learned", "digest": format!("d{}", body.len())}),
            serde_json::json!({"class": "ham", "learned": 1, "already_learned": 0, "failed": 0, "failures": [], "stopped": null}),
        ]
    );
    assert_eq!(text(&output.stderr), "");
    assert_eq!(all_seen(&seen)[0].target, "/api/v1/learn/ham");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_long_learn_run_reports_progress_on_stderr() {
    let dir = scratch("learn-progress");
    let mbox = dir.join("ham.mbox");
    let messages: String = (0..200)
        .map(|i| format!("From x\nSubject: ham {i}\n\nbody\n\n"))
        .collect();
    std::fs::write(&mbox, messages).unwrap();
    let (addr, seen) = respond_each(learning_server);
    let output = mxctl(addr, &["learn", "ham", mbox.to_str().unwrap()], b"");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stderr),
        "mxctl: learning ham: 200 messages (200 learned, 0 already learned, 0 failed)\n"
    );
    assert_eq!(all_seen(&seen).len(), 200);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_oversized_or_missing_file_is_named_and_the_others_are_still_learned() {
    let dir = scratch("learn-oversized");
    let big = dir.join("big.eml");
    std::fs::write(&big, vec![b'a'; 1024 * 1024 + 1]).unwrap();
    let small = dir.join("small.eml");
    std::fs::write(&small, "Subject: small\n\nok\n").unwrap();
    let missing = dir.join("missing.eml");
    let (addr, seen) = respond_each(learning_server);
    let output = mxctl(
        addr,
        &[
            "learn",
            "spam",
            big.to_str().unwrap(),
            missing.to_str().unwrap(),
            small.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "mxctl: {} is larger than 1048576 bytes, the admin API's limit for a message",
            big.display()
        )
    );
    assert!(
        lines[1].starts_with(&format!("mxctl: cannot read {}: ", missing.display())),
        "{stderr}"
    );
    assert_eq!(
        lines[2],
        format!(
            "mxctl: 2 of 3 messages failed: {}, {}",
            big.display(),
            missing.display()
        )
    );
    let requests = all_seen(&seen);
    assert_eq!(requests.len(), 1);
    assert_eq!(text(&requests[0].body), "Subject: small\n\nok\n");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_refused_token_stops_the_learn_run_at_the_first_message() {
    let dir = scratch("learn-401");
    let mbox = dir.join("spam.mbox");
    std::fs::write(&mbox, "From a\nSubject: 1\n\nx\nFrom b\nSubject: 2\n\ny\n").unwrap();
    let (addr, seen) = respond_each(|_| json_answer(401, r#"{"error":"invalid token"}"#));
    let output = mxctl(addr, &["learn", "spam", mbox.to_str().unwrap()], b"");
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.ends_with(&format!(
            "mxctl: 1 of 1 messages failed: {} message 1 (line 1); stopped early: \
             the server refused the admin token; the other messages were not sent\n",
            mbox.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("HTTP 401 Unauthorized: invalid token"),
        "{stderr}"
    );
    assert_eq!(all_seen(&seen).len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn forget_deletes_each_digest_and_names_the_ones_that_failed() {
    let (addr, seen) = respond_each(|seen| {
        if seen.target.ends_with("/d1") {
            json_answer(200, r#"{"digest":"d1","forgotten":true}"#)
        } else {
            json_answer(404, r#"{"error":"no learned message with digest d2"}"#)
        }
    });
    let output = mxctl(addr, &["forget", "d1", "d2"], b"");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(text(&output.stdout), "forgot d1\n");
    assert_eq!(
        text(&output.stderr),
        format!(
            "mxctl: DELETE http://{addr}/api/v1/learn/d2: HTTP 404 Not Found: \
             no learned message with digest d2\n\
             mxctl: 1 of 2 digests not forgotten: d2\n"
        )
    );
    let targets: Vec<(String, String)> = all_seen(&seen)
        .into_iter()
        .map(|r| (r.method, r.target))
        .collect();
    assert_eq!(
        targets,
        [
            ("DELETE".to_string(), "/api/v1/learn/d1".to_string()),
            ("DELETE".to_string(), "/api/v1/learn/d2".to_string())
        ]
    );
}

#[test]
fn bayes_prints_a_table_per_node_with_totals() {
    let answer = r#"{"spam_learned":3,"ham_learned":5,"tokens":420,"ready":false,
        "nodes":{"mx1":{"spam_learned":3,"ham_learned":1,"tokens":300},
                 "mx2":{"spam_learned":0,"ham_learned":4,"tokens":120}}}"#;
    let (addr, seen) = respond_once(json_answer(200, answer));
    let output = mxctl(addr, &["bayes"], b"");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "NODE   SPAM_LEARNED  HAM_LEARNED  TOKENS\n\
         mx1               3            1     300\n\
         mx2               0            4     120\n\
         TOTAL             3            5     420\n\
         \n\
         ready: no, the classifier does not vote until enough spam and ham are learned\n"
    );
    assert_eq!(seen.recv().unwrap().target, "/api/v1/bayes");
}

#[test]
fn classify_posts_the_message_with_the_envelope_and_shows_the_symbols() {
    let dir = scratch("classify");
    let message = dir.join("m.eml");
    std::fs::write(&message, "Subject: BUY NOW\r\n\r\ncheap\r\n").unwrap();
    let answer = r#"{"score":7.5,"verdict":"tag","bayes":0.97,"rule_id":null,
        "symbols":[{"name":"SUBJ_ALL_CAPS","weight":2.5,"detail":"BUY NOW"},
                   {"name":"BAYES_SPAM_95","weight":5.0,"detail":"p=0.97"}]}"#;
    let (addr, seen) = respond_once(json_answer(200, answer));
    let output = mxctl(
        addr,
        &[
            "classify",
            message.to_str().unwrap(),
            "--from",
            "a@b.example",
            "--ip",
            "192.0.2.7",
        ],
        b"",
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "score:   7.5\n\
         verdict: tag\n\
         bayes:   0.97\n\
         \n\
         SYMBOL         WEIGHT  DETAIL\n\
         BAYES_SPAM_95     5.0  p=0.97\n\
         SUBJ_ALL_CAPS     2.5  BUY NOW\n"
    );
    let seen = seen.recv().unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("POST", "/api/v1/classify?from=a%40b.example&ip=192.0.2.7")
    );
    assert_eq!(
        seen.headers.get("content-type").map(String::as_str),
        Some("message/rfc822")
    );
    assert_eq!(text(&seen.body), "Subject: BUY NOW\r\n\r\ncheap\r\n");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn classify_json_is_the_answer_on_one_line() {
    let answer =
        r#"{ "score": 0, "verdict": "accept", "bayes": null, "rule_id": null, "symbols": [] }"#;
    let (addr, seen) = respond_once(json_answer(200, answer));
    let output = mxctl(
        addr,
        &["classify", "-", "--json"],
        b"Subject: hi\n\nhello\n",
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let expected: serde_json::Value = serde_json::from_str(answer).unwrap();
    assert_eq!(text(&output.stdout), format!("{expected}\n"));
    assert_eq!(text(&seen.recv().unwrap().body), "Subject: hi\n\nhello\n");
}

#[test]
fn classify_server_error_exits_1_with_its_message() {
    let (addr, _seen) = respond_once(json_answer(400, r#"{"error":"not a message: no header"}"#));
    let output = mxctl(addr, &["classify", "-"], b"garbage\n");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(text(&output.stdout), "");
    assert_eq!(
        text(&output.stderr),
        format!(
            "mxctl: POST http://{addr}/api/v1/classify: HTTP 400 Bad Request: not a message: no header\n"
        )
    );
}

#[test]
fn classify_refuses_an_oversized_file_before_sending() {
    let dir = scratch("classify-big");
    let big = dir.join("big.eml");
    std::fs::write(&big, vec![b'a'; 1024 * 1024 + 1]).unwrap();
    let (addr, seen) = respond_each(learning_server);
    let output = mxctl(addr, &["classify", big.to_str().unwrap()], b"");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        format!(
            "mxctl: {} is larger than 1048576 bytes, the admin API's limit for a message\n",
            big.display()
        )
    );
    assert!(all_seen(&seen).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn quarantine_learn_and_release_with_learning() {
    let (addr, seen) = respond_once(json_answer(200, r#"{"digest":"d9","learned":true}"#));
    let output = mxctl(addr, &["quarantine", "learn", "q-7", "--class", "ham"], b"");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("\"digest\": \"d9\""));
    let seen = seen.recv().unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("POST", "/api/v1/quarantine/q-7/learn?class=ham")
    );

    let (addr, seen) = respond_once(json_answer(202, r#"{"status":"released"}"#));
    let output = mxctl(addr, &["quarantine", "release", "q-7", "--learn-ham"], b"");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        seen.recv().unwrap().target,
        "/api/v1/quarantine/q-7/release?learn=ham"
    );
}

#[test]
fn spam_settings_are_shown_and_replaced() {
    let settings =
        r#"{"thresholds":{"tag":5,"quarantine":10,"reject":15},"weights":{"SUBJ_ALL_CAPS":2.5}}"#;
    let (addr, seen) = respond_once(json_answer(200, settings));
    let output = mxctl(addr, &["settings", "spam"], b"");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("\"reject\": 15"));
    assert_eq!(seen.recv().unwrap().target, "/api/v1/settings/spam");

    let (addr, seen) = respond_once(json_answer(200, settings));
    let output = mxctl(
        addr,
        &["settings", "spam", "set", "--file", "-"],
        settings.as_bytes(),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let seen = seen.recv().unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("PUT", "/api/v1/settings/spam")
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&seen.body).unwrap(),
        serde_json::from_str::<serde_json::Value>(settings).unwrap()
    );
}

#[test]
fn a_rate_limited_request_is_sent_again_after_the_wait() {
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = answered.clone();
    let (addr, seen) = respond_each(move |_| {
        if count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
            json_answer(429, r#"{"error":"too many requests from 127.0.0.1"}"#)
        } else {
            json_answer(200, r#"{"messages": 1}"#)
        }
    });
    let output = mxctl(addr, &["stats"], b"");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("\"messages\": 1"),
        "{}",
        text(&output.stdout)
    );
    let requests: Vec<Seen> = seen.try_iter().collect();
    assert_eq!(
        requests.len(),
        3,
        "two refusals, then the answer: {requests:?}"
    );
    assert!(requests.iter().all(|r| r.target == requests[0].target));
}
