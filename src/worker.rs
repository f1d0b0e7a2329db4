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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::AbortHandle;
// tokio's clock, so the waits follow a paused test clock too.
use tokio::time::Instant;

use crate::engine::{AlphaMask, Engine, EngineError, Prompt, SessionId};
use crate::imageio::LoadedImage;

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

/// Reports from the tasks the worker starts.
enum Done {
    Init {
        image: u64,
        result: Result<SessionId, EngineError>,
        elapsed: Duration,
    },
    Segment {
        image: u64,
        number: u64,
        prompt: Prompt,
        result: Result<AlphaMask, EngineError>,
        elapsed: Duration,
    },
}

/// The state of the image being worked on.
struct Current {
    id: u64,
    image: Arc<LoadedImage>,
    session: Option<SessionId>,
    init_task: Option<AbortHandle>,
    /// The newest prompt the user made, and whether it still has to be sent.
    latest: Option<Prompt>,
    pending: bool,
    next_number: u64,
    newest_sent: u64,
    /// Results numbered at or below this are never delivered.
    shown: u64,
    in_flight: HashMap<u64, AbortHandle>,
    retries: u32,
    paused_until: Option<Instant>,
    /// Re-initialize when the pause ends (a failed initialize being retried).
    init_when_resumed: bool,
    blocked: bool,
    was_busy: bool,
}

impl Current {
    fn new(id: u64, image: Arc<LoadedImage>) -> Self {
        Current {
            id,
            image,
            session: None,
            init_task: None,
            latest: None,
            pending: false,
            next_number: 1,
            newest_sent: 0,
            shown: 0,
            in_flight: HashMap::new(),
            retries: 0,
            paused_until: None,
            init_when_resumed: false,
            blocked: false,
            was_busy: false,
        }
    }

    /// Whether the newest prompt has a green dot, i.e. something to segment.
    fn has_dots(&self) -> bool {
        self.latest.as_ref().is_some_and(|p| !p.green.is_empty())
    }
}

struct Worker {
    engine: Arc<dyn Engine>,
    policy: WorkerPolicy,
    events: std::sync::mpsc::Sender<Event>,
    notify: Notify,
    done_tx: mpsc::UnboundedSender<Done>,
    current: Option<Current>,
    opened: u64,
}

async fn run(
    engine: Arc<dyn Engine>,
    policy: WorkerPolicy,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: std::sync::mpsc::Sender<Event>,
    notify: Notify,
) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut w = Worker {
        engine,
        policy,
        events,
        notify,
        done_tx,
        current: None,
        opened: 0,
    };
    loop {
        let pause = w.current.as_ref().and_then(|c| c.paused_until);
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(cmd) => w.command(cmd),
                None => break,
            },
            Some(done) = done_rx.recv() => w.done(done),
            _ = sleep_until(pause) => w.resume(),
        }
        w.report_busy();
    }
    w.close();
}

async fn sleep_until(when: Option<Instant>) {
    match when {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl Worker {
    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
        (self.notify)();
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Open(image) => self.open(image),
            Command::Prompt(prompt) => self.prompt(prompt),
            Command::Reinitialize => self.reinitialize(),
            Command::Retry => self.retry(),
            Command::SetEngine(engine) => self.set_engine(engine),
            Command::Close => self.close(),
        }
    }

    fn open(&mut self, image: Arc<LoadedImage>) {
        self.close();
        self.opened += 1;
        self.current = Some(Current::new(self.opened, image));
        self.start_init();
    }

    fn prompt(&mut self, prompt: Prompt) {
        let Some(c) = self.current.as_mut() else {
            return;
        };
        if prompt.green.is_empty() {
            // Nothing to segment: whatever is in flight is for dots that are gone.
            c.shown = c.next_number - 1;
            c.latest = Some(prompt);
            c.pending = false;
            return;
        }
        c.latest = Some(prompt);
        c.pending = true;
        self.pump();
    }

    fn reinitialize(&mut self) {
        if let Some(c) = self.current.as_mut() {
            c.blocked = false;
            c.pending = c.has_dots();
            if c.session.is_none() {
                self.start_init();
            }
        }
    }

    fn retry(&mut self) {
        let Some(c) = self.current.as_mut() else {
            return;
        };
        c.blocked = false;
        c.retries = 0;
        c.paused_until = None;
        c.pending = c.has_dots();
        if c.session.is_none() {
            if c.init_task.is_none() {
                self.start_init();
            }
        } else {
            self.pump();
        }
    }

    /// Switches engines; the current image and its dots are opened again on the new one.
    fn set_engine(&mut self, engine: Arc<dyn Engine>) {
        let reopen = self
            .current
            .as_ref()
            .map(|c| (c.image.clone(), c.latest.clone()));
        self.close();
        self.engine = engine;
        if let Some((image, latest)) = reopen {
            self.open(image);
            if let Some(p) = latest {
                self.prompt(p);
            }
        }
    }

    /// Cancels everything for the current image and frees its session.
    fn close(&mut self) {
        let Some(c) = self.current.take() else { return };
        if let Some(t) = c.init_task {
            t.abort();
        }
        for (_, t) in c.in_flight {
            t.abort();
        }
        if let Some(session) = c.session {
            let engine = self.engine.clone();
            tokio::spawn(async move { engine.close(&session).await });
        }
        if c.was_busy {
            self.emit(Event::Busy {
                image: c.id,
                busy: false,
            });
        }
    }

    fn start_init(&mut self) {
        let Some(c) = self.current.as_mut() else {
            return;
        };
        if let Some(t) = c.init_task.take() {
            t.abort();
        }
        c.session = None;
        c.init_when_resumed = false;
        let (image, id) = (c.image.clone(), c.id);
        let engine = self.engine.clone();
        let done = self.done_tx.clone();
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let result = engine.initialize(image).await;
            let _ = done.send(Done::Init {
                image: id,
                result,
                elapsed: start.elapsed(),
            });
        });
        c.init_task = Some(task.abort_handle());
        self.emit(Event::Initializing { image: id });
    }

    /// Sends the newest prompt if there is room in flight and nothing holds us back.
    fn pump(&mut self) {
        let Some(c) = self.current.as_mut() else {
            return;
        };
        let Some(session) = c.session.clone() else {
            return;
        };
        if c.blocked
            || c.paused_until.is_some()
            || !c.pending
            || c.in_flight.len() >= self.policy.max_in_flight
        {
            return;
        }
        let Some(prompt) = c.latest.clone() else {
            return;
        };
        c.pending = false;
        let number = c.next_number;
        c.next_number += 1;
        c.newest_sent = number;
        let (engine, done, id) = (self.engine.clone(), self.done_tx.clone(), c.id);
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let result = engine.segment(&session, &prompt, number).await;
            let _ = done.send(Done::Segment {
                image: id,
                number,
                prompt,
                result,
                elapsed: start.elapsed(),
            });
        });
        c.in_flight.insert(number, task.abort_handle());
    }

    fn resume(&mut self) {
        let Some(c) = self.current.as_mut() else {
            return;
        };
        c.paused_until = None;
        if c.init_when_resumed {
            self.start_init();
        } else {
            self.pump();
        }
    }

    /// Schedules an automatic retry, or gives up after `max_retries`.
    fn back_off(&mut self, error: EngineError, init: bool) {
        let policy = self.policy.clone();
        let Some(c) = self.current.as_mut() else {
            return;
        };
        let wait = match &error {
            EngineError::RateLimited { retry_after, .. } => {
                retry_after.unwrap_or(policy.default_rate_wait)
            }
            _ => {
                if c.retries >= policy.max_retries {
                    c.retries = 0;
                    let id = c.id;
                    self.emit(Event::Failed { image: id, error });
                    return;
                }
                c.retries += 1;
                policy.base_backoff * 2u32.pow(c.retries - 1)
            }
        };
        c.paused_until = Some(Instant::now() + wait);
        c.init_when_resumed = init;
        if !init {
            c.pending = true; // the newest prompt goes out when the pause ends
        }
        let id = c.id;
        self.emit(Event::Retrying {
            image: id,
            after: wait,
            error,
        });
    }

    fn done(&mut self, done: Done) {
        match done {
            Done::Init {
                image,
                result,
                elapsed,
            } => self.init_done(image, result, elapsed),
            Done::Segment {
                image,
                number,
                prompt,
                result,
                elapsed,
            } => self.segment_done(image, number, prompt, result, elapsed),
        }
    }

    fn init_done(&mut self, image: u64, result: Result<SessionId, EngineError>, elapsed: Duration) {
        let Some(c) = self.current.as_mut().filter(|c| c.id == image) else {
            return;
        };
        c.init_task = None;
        match result {
            Ok(session) => {
                c.session = Some(session);
                c.retries = 0;
                self.emit(Event::Ready { image, elapsed });
                self.pump();
            }
            Err(e) if e.is_transient() => self.back_off(e, true),
            Err(EngineError::Cancelled) => {}
            Err(error) => self.emit(Event::Failed { image, error }),
        }
    }

    /// Delivers a mask unless a newer one was, or decides what a failure means.
    fn segment_done(
        &mut self,
        image: u64,
        number: u64,
        prompt: Prompt,
        result: Result<AlphaMask, EngineError>,
        round_trip: Duration,
    ) {
        let Some(c) = self.current.as_mut().filter(|c| c.id == image) else {
            return;
        };
        c.in_flight.remove(&number);
        match result {
            Ok(mask) => {
                c.retries = 0;
                if number > c.shown {
                    c.shown = number;
                    let mask = Arc::new(mask);
                    self.emit(Event::Mask {
                        image,
                        request_number: number,
                        prompt,
                        mask,
                        round_trip,
                    });
                }
            }
            // A failure of a call that a newer one already superseded changes nothing.
            Err(_) if number < c.newest_sent || number <= c.shown => {}
            Err(EngineError::Cancelled) => {}
            Err(EngineError::SessionNotFound(_)) => self.session_lost(),
            Err(e) if e.is_transient() || matches!(e, EngineError::Transport(_)) => {
                self.back_off(e, false)
            }
            Err(error) => {
                c.blocked = false;
                self.emit(Event::Failed { image, error });
            }
        }
        self.pump();
    }

    /// The session expired: start a new one, or ask first when that costs a credit.
    fn session_lost(&mut self) {
        let Some(c) = self.current.as_mut() else {
            return;
        };
        c.session = None;
        c.pending = true;
        for (_, t) in c.in_flight.drain() {
            t.abort();
        }
        if self.policy.auto_reinitialize {
            self.start_init();
        } else {
            c.blocked = true;
            let image = c.id;
            self.emit(Event::SessionExpired { image });
        }
    }

    fn report_busy(&mut self) {
        let Some(c) = self.current.as_mut() else {
            return;
        };
        let busy = !c.in_flight.is_empty() || c.init_task.is_some();
        if busy != c.was_busy {
            c.was_busy = busy;
            let id = c.id;
            self.emit(Event::Busy { image: id, busy });
        }
    }
}
