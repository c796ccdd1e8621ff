//! The progress line of a long `mxctl` run (`learn`, `forget`, bulk `quarantine
//! release|delete`), on stderr: a terminal gets one line redrawn in place, a pipe or a
//! file gets a line every [`PROGRESS_EVERY_MESSAGES`] items.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

/// When stderr is not a terminal: one progress line per this many items.
pub const PROGRESS_EVERY_MESSAGES: usize = 200;
/// When stderr is a terminal: the progress line is redrawn at most this often
/// (and first after this long, so a short run draws nothing).
pub const PROGRESS_REDRAW_INTERVAL: Duration = Duration::from_millis(250);

/// The progress shown on stderr during a run.
pub struct Progress {
    /// Whether stderr is a terminal (redraw in place) or not (a line now and then).
    terminal: bool,
    last_drawn: Instant,
    /// Whether a redrawn line is on screen now (to be cleared before other output).
    on_screen: bool,
}

impl Progress {
    /// A progress line for stderr as it is now.
    pub fn new() -> Self {
        Progress {
            terminal: std::io::stderr().is_terminal(),
            last_drawn: Instant::now(),
            on_screen: false,
        }
    }

    /// Shows `text()` when it is time to, after `done` items.
    pub fn update(&mut self, done: usize, text: impl FnOnce() -> String) {
        if self.terminal {
            if self.last_drawn.elapsed() >= PROGRESS_REDRAW_INTERVAL {
                eprint!("\r\x1b[Kmxctl: {}", text());
                self.last_drawn = Instant::now();
                self.on_screen = true;
            }
        } else if done > 0 && done.is_multiple_of(PROGRESS_EVERY_MESSAGES) {
            eprintln!("mxctl: {}", text());
        }
    }

    /// Takes the redrawn line off the screen before other output.
    pub fn clear(&mut self) {
        if self.on_screen {
            eprint!("\r\x1b[K");
            self.on_screen = false;
        }
    }

    /// Prints `text` on its own line (clearing the progress line first).
    pub fn message(&mut self, text: &str) {
        self.clear();
        eprintln!("mxctl: {text}");
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}
