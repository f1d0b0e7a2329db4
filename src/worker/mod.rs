//! The background worker between a front door and an engine.
//!
//! The UI (or the CLI) sends commands: open an image, here are all the dots now, close.
//! The worker turns prompts into segment calls numbered 1, 2, 3 ... per image, keeps a
//! small bounded number in flight, and while calls are in flight only the newest pending
//! prompt is sent next (bursts of clicks coalesce). Results come back as events, and a
//! result older than the newest one delivered is dropped: latest wins.
//!
//! Failures keep the dots: 429 waits for `Retry-After`, then sends the newest prompt;
//! network and server failures retry a bounded number of times with backoff; 404 (the
//! session expired) re-initializes and replays, with the user's consent where that costs
//! a credit; 401/402 and malformed answers are reported and not retried.

mod machine;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::engine::{AlphaMask, Engine, EngineError, Prompt};
use crate::imageio::LoadedImage;
use machine::run;

/// What a front door asks of the worker.
pub enum Command {
    /// Close any current image and start a session for this one.
    Open(Arc<LoadedImage>),
    /// Every dot placed so far on the current image.
    Prompt(Prompt),
    /// The user agreed to start a new session after the old one expired.
    Reinitialize,
    /// Try again after an error that was not retried automatically.
    Retry,
    /// Use another engine; the current image is opened again on it.
    SetEngine(Arc<dyn Engine>),
    /// Close the current image and cancel its calls.
    Close,
    /// What the result of this prompt would be, without making it the answer (the
    /// editor's hover preview); `None` drops a waiting one. Latest wins: one preview is in
    /// flight at a time, only while no real prompt waits or runs, and a newer preview
    /// replaces one not yet sent.
    Preview(Option<Prompt>),
    /// Every answer the engine sees for this prompt (see [`Engine::candidates`]).
    Candidates(Prompt),
    /// Candidate `index` becomes the engine's answer to `prompt` (see [`Engine::choose`]).
    Choose { prompt: Prompt, index: usize },
}

/// What the worker reports. `image` numbers the opened images, so a front door can drop
/// reports about an image it no longer shows.
#[derive(Debug, Clone)]
pub enum Event {
    Initializing {
        image: u64,
    },
    Ready {
        image: u64,
        elapsed: Duration,
    },
    /// A new mask, newer than any delivered before for this image.
    Mask {
        image: u64,
        request_number: u64,
        prompt: Prompt,
        mask: Arc<AlphaMask>,
        round_trip: Duration,
    },
    /// Whether segment or initialize calls are in flight.
    Busy {
        image: u64,
        busy: bool,
    },
    /// A transient failure; the worker tries again by itself after `after`.
    Retrying {
        image: u64,
        after: Duration,
        error: EngineError,
    },
    /// The session expired and a new one costs a credit: send `Reinitialize` to go on.
    SessionExpired {
        image: u64,
    },
    /// A failure the worker does not retry by itself. The dots are kept.
    Failed {
        image: u64,
        error: EngineError,
    },
    /// The answer to a [`Command::Preview`]: a look, never the shown result.
    Preview {
        image: u64,
        prompt: Prompt,
        mask: Arc<AlphaMask>,
    },
    /// The answers to a [`Command::Candidates`], best first.
    Candidates {
        image: u64,
        prompt: Prompt,
        result: Result<Vec<Arc<AlphaMask>>, EngineError>,
    },
}

/// How the worker behaves; the defaults suit the editor.
#[derive(Debug, Clone)]
pub struct WorkerPolicy {
    /// Segment calls in flight at once.
    pub max_in_flight: usize,
    /// Automatic retries of network and server failures before giving up.
    pub max_retries: u32,
    /// The first retry's wait; each next one doubles it.
    pub base_backoff: Duration,
    /// Wait used for a 429 without `Retry-After`.
    pub default_rate_wait: Duration,
    /// Re-initialize after a 404 without asking (free for local engines).
    pub auto_reinitialize: bool,
}

impl Default for WorkerPolicy {
    fn default() -> Self {
        WorkerPolicy {
            max_in_flight: 2,
            max_retries: 3,
            base_backoff: Duration::from_millis(500),
            default_rate_wait: Duration::from_secs(2),
            auto_reinitialize: true,
        }
    }
}

/// The front door's end: send commands, poll events.
pub struct WorkerHandle {
    commands: mpsc::UnboundedSender<Command>,
    events: std::sync::mpsc::Receiver<Event>,
    /// Owns the runtime when the worker made its own (the editor's case).
    _thread: Option<std::thread::JoinHandle<()>>,
}

impl WorkerHandle {
    /// Sends a command; never blocks. A stopped worker ignores it.
    pub fn send(&self, command: Command) {
        let _ = self.commands.send(command);
    }

    /// The next event, if one is waiting; never blocks (for the UI thread).
    pub fn try_event(&self) -> Option<Event> {
        self.events.try_recv().ok()
    }

    /// Waits for the next event (for the CLI and tests, never the UI thread).
    pub fn wait_event(&self, timeout: Duration) -> Option<Event> {
        self.events.recv_timeout(timeout).ok()
    }
}

/// Called after each event so an idle UI wakes up (e.g. `ctx.request_repaint()`).
pub type Notify = Arc<dyn Fn() + Send + Sync>;

/// Starts a worker on its own thread and runtime; dropping the handle stops it.
pub fn spawn(engine: Arc<dyn Engine>, policy: WorkerPolicy, notify: Notify) -> WorkerHandle {
    let (ctx, crx) = mpsc::unbounded_channel();
    let (etx, erx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("aicut-worker".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build();
            match rt {
                Ok(rt) => rt.block_on(run(engine, policy, crx, etx, notify)),
                Err(e) => tracing::error!(error = %e, "the worker's runtime did not start"),
            }
        })
        .ok();
    WorkerHandle {
        commands: ctx,
        events: erx,
        _thread: thread,
    }
}

/// Starts a worker as a task on the current tokio runtime.
pub fn spawn_on_current(
    engine: Arc<dyn Engine>,
    policy: WorkerPolicy,
    notify: Notify,
) -> WorkerHandle {
    let (ctx, crx) = mpsc::unbounded_channel();
    let (etx, erx) = std::sync::mpsc::channel();
    tokio::spawn(run(engine, policy, crx, etx, notify));
    WorkerHandle {
        commands: ctx,
        events: erx,
        _thread: None,
    }
}
