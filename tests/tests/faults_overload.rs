//! Faults 5: overload. A node configured for `smtp.max_connections = 4` gets ten times that
//! many clients at once, over and over: the excess is told `421` at once (no hang), the
//! admitted sessions work, and every message that got a 250 survives a SIGKILL and is
//! delivered once the downstream is up.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mxmesh_tests::faults::{Smtp, assert_acked_survive_kill9, send_one};
use mxmesh_tests::{Node, NodeOpts, Sink, SinkMode};

const CAPACITY: usize = 4;

#[test]
fn ten_times_the_connection_capacity_gets_421_and_acked_mail_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = Sink::held(&dir.path().join("sink"), SinkMode::default());
    let mut o = NodeOpts::new(sink.addr);
    o.smtp_extra = format!("max_connections = {CAPACITY}");
    let mut node = Node::start(&dir.path().join("node"), &o);
    let smtp = node.smtp;

    // 1. Capacity held by idle sessions: ten times as many more are refused at once.
    let mut held = Vec::new();
    for _ in 0..CAPACITY {
        let (mut s, code, _) = Smtp::connect(smtp, Duration::from_secs(10)).unwrap();
        assert_eq!(code, 220);
        assert_eq!(s.cmd("EHLO held.test").unwrap().0, 250);
        held.push(s);
    }
    let excess: Vec<_> = (0..10 * CAPACITY)
        .map(|_| {
            std::thread::spawn(move || {
                let t = Instant::now();
                let r = Smtp::connect(smtp, Duration::from_secs(10)).map(|(_, c, text)| (c, text));
                (r, t.elapsed())
            })
        })
        .collect();
    for h in excess {
        let (r, took) = h.join().unwrap();
        let (code, text) = r.expect("the excess connection is answered, not dropped");
        assert_eq!(code, 421, "excess connection got {code} {text}");
        assert!(text.contains("4.7.0"), "{text}");
        assert!(took < Duration::from_secs(2), "421 took {took:?}");
    }
    // The admitted sessions still work.
    let mut acked = Vec::new();
    for (i, s) in held.iter_mut().enumerate() {
        let subject = format!("held-{i}");
        let r = s
            .send(
                "a@example.org",
                "user@example.com",
                &mxmesh_tests::faults::message_of(&subject, 2000),
            )
            .unwrap();
        assert_eq!(r.0, 250, "{r:?}");
        acked.push(subject);
    }
    for s in held {
        s.quit();
    }

    // 2. A flood: 10x capacity clients, each sending one message per session, for 4 s.
    let acked_flood = Arc::new(Mutex::new(Vec::new()));
    let codes = Arc::new(Mutex::new(std::collections::BTreeMap::<u16, usize>::new()));
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let end = Instant::now() + Duration::from_secs(4);
    let clients: Vec<_> = (0..10 * CAPACITY)
        .map(|c| {
            let (acked, codes, slowest) = (acked_flood.clone(), codes.clone(), slowest.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while Instant::now() < end {
                    n += 1;
                    let subject = format!("flood-{c}-{n}");
                    let t = Instant::now();
                    let (code, text) = send_one(smtp, &subject, 3000);
                    let took = t.elapsed();
                    {
                        let mut s = slowest.lock().unwrap();
                        *s = (*s).max(took);
                    }
                    *codes.lock().unwrap().entry(code).or_default() += 1;
                    match code {
                        250 => acked.lock().unwrap().push(subject),
                        421 => {}
                        _ => panic!("{subject}: {code} {text}"),
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let codes = codes.lock().unwrap().clone();
    let slowest = *slowest.lock().unwrap();
    eprintln!("overload flood: replies {codes:?}, slowest session {slowest:?}");
    assert!(codes.get(&421).copied().unwrap_or(0) > 0, "{codes:?}");
    assert!(codes.get(&250).copied().unwrap_or(0) > 0, "{codes:?}");
    assert!(
        slowest < Duration::from_secs(10),
        "a session hung: {slowest:?}"
    );
    acked.extend(acked_flood.lock().unwrap().iter().cloned());

    // 3. Accepted mail is durable: SIGKILL, then the downstream comes up.
    assert_acked_survive_kill9(&mut node, &mut sink, &acked);
    eprintln!("overload: {} acked, 0 lost", acked.len());
}
