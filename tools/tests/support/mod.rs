//! The tiny in-test HTTP responder and the mxctl runner shared by the mxctl test files.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;

/// One request as the responder saw it.
#[derive(Debug)]
pub struct Seen {
    /// The request method.
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    /// The request body.
    pub body: Vec<u8>,
}

/// A canned answer.
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The Content-Type header.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

/// A JSON answer with `status` and `body`.
pub fn json_answer(status: u16, body: &str) -> Answer {
    Answer {
        status,
        content_type: "application/json",
        body: body.as_bytes().to_vec(),
    }
}

/// Serves exactly one request with `answer` on a fresh port, and hands back
/// what it saw.
pub fn respond_once(answer: Answer) -> (SocketAddr, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let seen = serve(stream, &answer);
        sender.send(seen).unwrap();
    });
    (addr, receiver)
}

/// Serves every request on a fresh port with what `answer` makes of it, one
/// connection per request, and hands back what it saw, in order.
pub fn respond_each(
    answer: impl Fn(&Seen) -> Answer + Send + 'static,
) -> (SocketAddr, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let stream = stream.unwrap();
            let seen = read_request(&stream);
            let answer = answer(&seen);
            // Handed over before the answer, so it is there when mxctl exits.
            if sender.send(seen).is_err() {
                return;
            }
            write_answer(stream, &answer);
        }
    });
    (addr, receiver)
}

/// Reads one request from `stream`, writes `answer`, returns what was read.
pub fn serve(stream: TcpStream, answer: &Answer) -> Seen {
    let seen = read_request(&stream);
    write_answer(stream, answer);
    seen
}

/// Reads one HTTP/1.1 request (head and Content-Length body).
pub fn read_request(stream: &TcpStream) -> Seen {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap().to_string();
    let target = parts.next().unwrap().to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    let length: usize = headers
        .get("content-length")
        .map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    Seen {
        method,
        target,
        headers,
        body,
    }
}

/// Writes `answer` as an HTTP/1.1 response and closes the stream.
pub fn write_answer(stream: TcpStream, answer: &Answer) {
    let mut writer = stream;
    let head = format!(
        "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        answer.status,
        answer.content_type,
        answer.body.len()
    );
    writer.write_all(head.as_bytes()).unwrap();
    writer.write_all(&answer.body).unwrap();
}

/// Runs the mxctl binary against the responder at `addr` with `args` and `stdin`.
pub fn mxctl(addr: SocketAddr, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mxctl"))
        .env("MXMESH_URL", format!("http://{addr}"))
        .env("MXMESH_TOKEN", "s3cret")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// Bytes as text, lossily.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
