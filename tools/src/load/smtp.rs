//! The minimal SMTP client that mxload drives: one session over one TCP stream.
//!
//! Written here on purpose rather than taken from a mail library: a load
//! generator needs exact control over what goes on the wire and when — MAIL,
//! RCPT and DATA pipelined in one write when the server offers PIPELINING,
//! a session reused across messages, each exchange timed — and general mail
//! clients (mail-send, lettre) hide all of that behind "send this message".
//! It speaks only what mxload needs: EHLO (HELO when EHLO is refused),
//! one-recipient transactions, RSET, QUIT. No TLS, no AUTH.
//!
//! Every read and write is bounded by the session timeout, and replies by the
//! limits in [`super::reply`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::reply::{Reply, ReplyError, parse_reply};

/// Bytes asked of the socket per read.
const READ_CHUNK_BYTES: usize = 8 * 1024;

/// "Service not available, closing transmission channel" (RFC 5321 3.8): may
/// come at any step, and the server hangs up after it.
pub const CLOSING_CODE: u16 = 421;

/// Where a session talks to and how long it waits.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The server, resolved once for the whole run.
    pub addr: SocketAddr,
    /// Name given in EHLO/HELO.
    pub ehlo_name: String,
    /// Bound on connect and on every single read or write.
    pub timeout: Duration,
}

/// The two commands that open every transaction, formatted once per run.
#[derive(Clone, Debug)]
pub struct Envelope {
    mail: String,
    rcpt: String,
}

impl Envelope {
    /// Callers check that the addresses hold no spaces, brackets or line ends.
    pub fn new(from: &str, rcpt: &str) -> Self {
        Envelope {
            mail: format!("MAIL FROM:<{from}>\r\n"),
            rcpt: format!("RCPT TO:<{rcpt}>\r\n"),
        }
    }
}

/// The step of a session a reply or error belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The TCP connect.
    Connect,
    /// The server's greeting.
    Banner,
    /// `EHLO`.
    Ehlo,
    /// `HELO`.
    Helo,
    /// `MAIL FROM`.
    Mail,
    /// `RCPT TO`.
    Rcpt,
    /// `DATA` (the command, up to its 354).
    Data,
    /// Sending the message body.
    Body,
    /// The end of data (`.`) and its reply.
    EndOfData,
    /// `RSET`.
    Rset,
    /// `QUIT`.
    Quit,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Connect => "connect",
            Stage::Banner => "banner",
            Stage::Ehlo => "EHLO",
            Stage::Helo => "HELO",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Body => "message body",
            Stage::EndOfData => "end of data",
            Stage::Rset => "RSET",
            Stage::Quit => "QUIT",
        })
    }
}

/// Why a step did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The server answered 4xx or 5xx. After a refused transaction the session
    /// is still in step and can go on after RSET, unless the code was 421.
    #[error("{stage}: {reply}")]
    Refused { stage: Stage, reply: Reply },
    /// The session is unusable: I/O failed or the server said something
    /// that does not fit the protocol.
    #[error(transparent)]
    Broken(#[from] SmtpError),
}

/// A session that broke.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// The TCP connect failed.
    #[error("connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    /// Reading or writing failed.
    #[error("{stage}: {source}")]
    Io { stage: Stage, source: io::Error },
    /// No progress within the timeout.
    #[error("{stage}: no progress within {}s", timeout.as_secs_f64())]
    Timeout { stage: Stage, timeout: Duration },
    /// The server closed the connection.
    #[error("{stage}: connection closed by the server")]
    Closed { stage: Stage },
    /// The reply does not parse as SMTP.
    #[error("{stage}: {source}")]
    BadReply { stage: Stage, source: ReplyError },
    /// A reply of a class the step does not expect (neither success nor 4xx/5xx).
    #[error("{stage}: unexpected reply {reply}")]
    Unexpected { stage: Stage, reply: Reply },
}

/// An open session, past the banner and EHLO, between transactions.
#[derive(Debug)]
pub struct SmtpClient {
    stream: TcpStream,
    /// Bytes received but not yet parsed into a reply; bounded by the reply limits.
    received: Vec<u8>,
    /// Whether the server offered PIPELINING in its EHLO reply.
    pipelining: bool,
    timeout: Duration,
}

impl SmtpClient {
    /// Connects, reads the banner and says EHLO (HELO if EHLO gets a 5xx).
    pub async fn connect(config: &ClientConfig) -> Result<Self, Failure> {
        let stage = Stage::Connect;
        let stream = timeout(config.timeout, TcpStream::connect(config.addr))
            .await
            .map_err(|_| SmtpError::Timeout {
                stage,
                timeout: config.timeout,
            })?
            .map_err(|source| SmtpError::Connect {
                addr: config.addr,
                source,
            })?;
        // Commands are small and latency is what we measure: no Nagle delay.
        stream
            .set_nodelay(true)
            .map_err(|source| SmtpError::Io { stage, source })?;
        let mut client = SmtpClient {
            stream,
            received: Vec::new(),
            pipelining: false,
            timeout: config.timeout,
        };
        let banner = client.read_reply(Stage::Banner).await?;
        expect(Stage::Banner, banner, 2)?;
        let ehlo = client
            .command(Stage::Ehlo, &format!("EHLO {}\r\n", config.ehlo_name))
            .await?;
        if ehlo.class() == 5 {
            let helo = client
                .command(Stage::Helo, &format!("HELO {}\r\n", config.ehlo_name))
                .await?;
            expect(Stage::Helo, helo, 2)?;
        } else {
            let ehlo = expect(Stage::Ehlo, ehlo, 2)?;
            client.pipelining = ehlo.has_extension("PIPELINING");
        }
        Ok(client)
    }

    /// Whether transactions go out pipelined.
    pub fn pipelining(&self) -> bool {
        self.pipelining
    }

    /// One transaction: envelope, DATA, the dot-stuffed `payload` (which ends
    /// with the ".\r\n" marker). Returns the final reply when it is 2xx.
    pub async fn send(&mut self, envelope: &Envelope, payload: &[u8]) -> Result<Reply, Failure> {
        if self.pipelining {
            self.send_pipelined(envelope, payload).await
        } else {
            self.send_in_turn(envelope, payload).await
        }
    }

    /// RFC 2920: MAIL, RCPT and DATA in one write, then all three replies are
    /// read before anything is decided; the body follows only a 354.
    async fn send_pipelined(
        &mut self,
        envelope: &Envelope,
        payload: &[u8],
    ) -> Result<Reply, Failure> {
        let commands = [
            envelope.mail.as_bytes(),
            envelope.rcpt.as_bytes(),
            b"DATA\r\n",
        ]
        .concat();
        self.write(Stage::Mail, &commands).await?;
        let mail = self.read_pipelined_reply(Stage::Mail).await?;
        let rcpt = self.read_pipelined_reply(Stage::Rcpt).await?;
        let data = self.read_pipelined_reply(Stage::Data).await?;
        let envelope_result =
            expect(Stage::Mail, mail, 2).and_then(|_| expect(Stage::Rcpt, rcpt, 2));
        match expect(Stage::Data, data, 3) {
            Ok(_) => {
                // A 354 obliges us to send the message even if the envelope
                // was refused; the earlier refusal is still what counts.
                let finished = self.finish(payload).await;
                if let Err(Failure::Broken(_)) = finished {
                    return finished;
                }
                envelope_result.and(finished)
            }
            Err(refused) => envelope_result.and(Err(refused)),
        }
    }

    /// A reply to a pipelined command. A 421 means the server is closing the
    /// session and the replies still owed will never come, so it ends the
    /// transaction at once.
    async fn read_pipelined_reply(&mut self, stage: Stage) -> Result<Reply, Failure> {
        let reply = self.read_reply(stage).await?;
        if reply.code == CLOSING_CODE {
            return Err(Failure::Refused { stage, reply });
        }
        Ok(reply)
    }

    async fn send_in_turn(
        &mut self,
        envelope: &Envelope,
        payload: &[u8],
    ) -> Result<Reply, Failure> {
        let mail = self.command(Stage::Mail, &envelope.mail).await?;
        expect(Stage::Mail, mail, 2)?;
        let rcpt = self.command(Stage::Rcpt, &envelope.rcpt).await?;
        expect(Stage::Rcpt, rcpt, 2)?;
        let data = self.command(Stage::Data, "DATA\r\n").await?;
        expect(Stage::Data, data, 3)?;
        self.finish(payload).await
    }

    async fn finish(&mut self, payload: &[u8]) -> Result<Reply, Failure> {
        self.write(Stage::Body, payload).await?;
        let reply = self.read_reply(Stage::EndOfData).await?;
        expect(Stage::EndOfData, reply, 2)
    }

    /// Abandons a refused transaction so the session can start another.
    pub async fn reset(&mut self) -> Result<(), Failure> {
        let reply = self.command(Stage::Rset, "RSET\r\n").await?;
        expect(Stage::Rset, reply, 2).map(drop)
    }

    /// Says QUIT and closes. The session is over either way, so a server
    /// that answers badly or not at all changes nothing.
    pub async fn quit(mut self) {
        if self.command(Stage::Quit, "QUIT\r\n").await.is_ok() {
            let _ = timeout(self.timeout, self.stream.shutdown()).await;
        }
    }

    async fn command(&mut self, stage: Stage, line: &str) -> Result<Reply, SmtpError> {
        self.write(stage, line.as_bytes()).await?;
        self.read_reply(stage).await
    }

    async fn write(&mut self, stage: Stage, bytes: &[u8]) -> Result<(), SmtpError> {
        timeout(self.timeout, self.stream.write_all(bytes))
            .await
            .map_err(|_| SmtpError::Timeout {
                stage,
                timeout: self.timeout,
            })?
            .map_err(|source| SmtpError::Io { stage, source })
    }

    /// The next complete reply, reading as much as it takes.
    async fn read_reply(&mut self, stage: Stage) -> Result<Reply, SmtpError> {
        let mut chunk = [0u8; READ_CHUNK_BYTES];
        loop {
            match parse_reply(&self.received) {
                Ok(Some((reply, used))) => {
                    self.received.drain(..used);
                    return Ok(reply);
                }
                Ok(None) => {}
                Err(source) => return Err(SmtpError::BadReply { stage, source }),
            }
            let read = timeout(self.timeout, self.stream.read(&mut chunk))
                .await
                .map_err(|_| SmtpError::Timeout {
                    stage,
                    timeout: self.timeout,
                })?
                .map_err(|source| SmtpError::Io { stage, source })?;
            if read == 0 {
                return Err(SmtpError::Closed { stage });
            }
            self.received.extend_from_slice(&chunk[..read]);
        }
    }
}

/// Ok when `reply` is of the `class` this step wants; a 4xx or 5xx is a
/// refusal; anything else means client and server are out of step.
fn expect(stage: Stage, reply: Reply, class: u16) -> Result<Reply, Failure> {
    match reply.class() {
        c if c == class => Ok(reply),
        4 | 5 => Err(Failure::Refused { stage, reply }),
        _ => Err(SmtpError::Unexpected { stage, reply }.into()),
    }
}
