//! Seams between the node and its tokio runtime, for the simulator.
//!
//! The simulator runs every node on one current-thread runtime with paused (virtual) time:
//! whenever every task waits, tokio jumps its clock to the next timer. Two things would make
//! that depend on the OS scheduler rather than on the seed:
//!
//! - work on another thread (`spawn_blocking`) that reads state the runtime's tasks change
//!   meanwhile: [`blocking`] runs it inline instead;
//! - real I/O in flight (the gossip codec's loopback datagrams, the relay's TCP exchange
//!   with the sink): while the kernel has not yet delivered it, tokio sees nothing to do
//!   and jumps the clock. [`hold_for_real_io`] keeps the clock still until it is done.
//!
//! Both only change behaviour after [`set_simulated`]; the daemon never calls it, and for
//! it [`blocking`] is `spawn_blocking` and [`hold_for_real_io`] does nothing.

use std::sync::atomic::{AtomicBool, Ordering};

static SIMULATED: AtomicBool = AtomicBool::new(false);

/// Switches the whole process to the simulator's behaviour (see the module docs).
pub fn set_simulated(on: bool) {
    SIMULATED.store(on, Ordering::Relaxed);
}

fn simulated() -> bool {
    SIMULATED.load(Ordering::Relaxed)
}

/// Runs `f` where it cannot stall the runtime: on tokio's blocking pool, or inline in the
/// simulator (whose one thread must see every state change in the same order each run).
pub async fn blocking<T, F>(f: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if simulated() {
        return Ok(f());
    }
    tokio::task::spawn_blocking(f).await
}

/// While alive, a paused tokio clock does not jump ahead (see the module docs).
pub struct RealIoHold {
    _release: Option<std::sync::mpsc::Sender<()>>,
}

/// Holds a paused (simulated) clock still until the returned guard is dropped: real I/O
/// started meanwhile completes before any timer fires. Works through tokio's rule that a
/// current-thread runtime with paused time never auto-advances while a blocking task runs;
/// the task waits for the guard's drop. A no-op outside the simulator.
pub fn hold_for_real_io() -> RealIoHold {
    if !simulated() {
        return RealIoHold { _release: None };
    }
    let (release, wait) = std::sync::mpsc::channel::<()>();
    drop(tokio::task::spawn_blocking(move || {
        let _ = wait.recv();
    }));
    RealIoHold {
        _release: Some(release),
    }
}
