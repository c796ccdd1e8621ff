//! Outbound connections of [`super::quic::QuicTransport`]: one cached connection per peer
//! address, single-flight dialling, and exponential backoff after failed dials. Each address
//! has its own slot, so a dead peer never delays messages to a live one.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use quinn::Connection;
use tokio::time::Instant;

use super::quic::{PEER_SLOTS_MAX, RECONNECT_BACKOFF_MAX, RECONNECT_BACKOFF_MIN};
use super::transport::TransportError;

/// A connection and the node id its peer's certificate names.
pub(crate) type Connected = (Connection, String);

/// Delay after `failures` failed dials in a row: 100 ms, 200 ms, … capped at 5 s.
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (RECONNECT_BACKOFF_MIN * 2u32.pow(doublings)).min(RECONNECT_BACKOFF_MAX)
}

#[derive(Default)]
pub(crate) struct Peers {
    slots: Mutex<HashMap<SocketAddr, Arc<PeerSlot>>>,
}

#[derive(Default)]
struct PeerSlot {
    /// Held while dialling, so that concurrent callers share one attempt.
    dialling: tokio::sync::Mutex<()>,
    /// Never held across an await.
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    connection: Option<Connected>,
    /// Dials that failed in a row.
    failures: u32,
    /// No dial before this instant.
    retry_at: Option<Instant>,
}

impl PeerSlot {
    fn state(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live cached connection, or why not to dial now (backoff), or `Ok(None)`: dial.
    fn ready(&self, to: SocketAddr) -> Result<Option<Connected>, TransportError> {
        let mut state = self.state();
        if let Some((conn, _)) = &state.connection {
            if conn.close_reason().is_none() {
                return Ok(state.connection.clone());
            }
            state.connection = None;
        }
        match state.retry_at {
            Some(retry_at) if Instant::now() < retry_at => Err(TransportError::Unreachable {
                addr: to,
                reason: format!(
                    "{} failed dial(s); next attempt in {} ms",
                    state.failures,
                    (retry_at - Instant::now()).as_millis()
                ),
            }),
            _ => Ok(None),
        }
    }

    fn record_failure(&self) {
        let mut state = self.state();
        state.failures = state.failures.saturating_add(1);
        state.retry_at = Some(Instant::now() + backoff(state.failures));
    }

    fn record_success(&self, connected: Connected) {
        let mut state = self.state();
        state.connection = Some(connected);
        state.failures = 0;
        state.retry_at = None;
    }
}

/// Counts a dial as failed unless it completed: an attempt abandoned by the caller's timeout
/// puts the address in backoff too.
struct DialAttempt<'a> {
    slot: &'a PeerSlot,
    done: bool,
}

impl Drop for DialAttempt<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.slot.record_failure();
        }
    }
}

impl Peers {
    /// The cached connection to `to`, or a new one from `dial` (unless `to` is in backoff).
    pub(crate) async fn connection<F, Fut>(
        &self,
        to: SocketAddr,
        dial: F,
    ) -> Result<Connected, TransportError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Connected, TransportError>>,
    {
        let slot = self.slot(to)?;
        if let Some(connected) = slot.ready(to)? {
            return Ok(connected);
        }
        let _dialling = slot.dialling.lock().await;
        // Someone else may have dialled (or failed) while we waited.
        if let Some(connected) = slot.ready(to)? {
            return Ok(connected);
        }
        let mut attempt = DialAttempt {
            slot: &slot,
            done: false,
        };
        let dialled = dial().await;
        attempt.done = true;
        match dialled {
            Ok(connected) => {
                slot.record_success(connected.clone());
                Ok(connected)
            }
            Err(e) => {
                slot.record_failure();
                Err(e)
            }
        }
    }

    /// Drops the cached connection to `to` if it is still `conn` (after a timeout or a broken
    /// stream), so that the next message dials afresh instead of waiting for the idle timeout.
    pub(crate) fn forget(&self, to: SocketAddr, conn: &Connection) {
        let slot = self.slots().get(&to).cloned();
        if let Some(slot) = slot {
            let mut state = slot.state();
            if matches!(&state.connection, Some((c, _)) if c.stable_id() == conn.stable_id()) {
                state.connection = None;
            }
        }
    }

    pub(crate) fn clear(&self) {
        self.slots().clear();
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<SocketAddr, Arc<PeerSlot>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn slot(&self, to: SocketAddr) -> Result<Arc<PeerSlot>, TransportError> {
        let mut slots = self.slots();
        if let Some(slot) = slots.get(&to) {
            return Ok(slot.clone());
        }
        if slots.len() >= PEER_SLOTS_MAX {
            // Forget addresses with neither a connection nor a dial in progress.
            slots.retain(|_, slot| {
                slot.state().connection.is_some() || slot.dialling.try_lock().is_err()
            });
        }
        if slots.len() >= PEER_SLOTS_MAX {
            return Err(TransportError::Unreachable {
                addr: to,
                reason: format!("more than {PEER_SLOTS_MAX} peers"),
            });
        }
        Ok(slots.entry(to).or_default().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(4), Duration::from_millis(800));
        assert_eq!(backoff(7), RECONNECT_BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), RECONNECT_BACKOFF_MAX);
    }

    fn addr() -> SocketAddr {
        "127.0.0.1:9".parse().unwrap()
    }

    fn refused() -> Result<Connected, TransportError> {
        Err(TransportError::Unreachable {
            addr: addr(),
            reason: "refused".into(),
        })
    }

    #[tokio::test]
    async fn a_failed_dial_backs_off_then_retries() {
        let peers = Peers::default();
        let err = peers
            .connection(addr(), || async { refused() })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("refused"), "{err}");
        // Within the backoff the dialler is not even called.
        let err = peers
            .connection(addr(), || async { panic!("dialled during backoff") })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("next attempt"), "{err}");
        tokio::time::sleep(backoff(1)).await;
        let err = peers
            .connection(addr(), || async { refused() })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("refused"), "{err}");
        let err = peers
            .connection(addr(), || async { panic!("dialled during backoff") })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("2 failed"), "{err}");
    }

    #[tokio::test]
    async fn an_abandoned_dial_counts_as_a_failure() {
        let peers = Peers::default();
        let hang = peers.connection(addr(), std::future::pending);
        assert!(
            tokio::time::timeout(Duration::from_millis(10), hang)
                .await
                .is_err()
        );
        let err = peers
            .connection(addr(), || async { panic!("dialled during backoff") })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("1 failed"), "{err}");
    }
}
