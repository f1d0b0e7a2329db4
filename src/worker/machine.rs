//! The worker's state machine: what it does on each command and each finished call.
//! Side requests (previews, candidates) are in [`side`].

mod side;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::AbortHandle;
// tokio's clock, so the waits follow a paused test clock too.
use tokio::time::Instant;

use super::{Command, Event, Notify, WorkerPolicy};
use crate::engine::{AlphaMask, Engine, EngineError, Prompt, SessionId};
use crate::imageio::LoadedImage;

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
    /// A side request finished (see [`side`]).
    Side(side::SideDone),
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
    /// Previews and candidates: asked for, in flight.
    side: side::SideRequests,
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
            side: side::SideRequests::default(),
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

pub(super) async fn run(
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
            Command::Preview(prompt) => self.preview(prompt),
            Command::Candidates(prompt) => self.candidates(prompt),
            Command::Choose { prompt, index } => self.choose(prompt, index),
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
        let Some(mut c) = self.current.take() else {
            return;
        };
        if let Some(t) = c.init_task {
            t.abort();
        }
        for (_, t) in c.in_flight {
            t.abort();
        }
        c.side.abort();
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

    /// Sends the newest prompt if there is room in flight and nothing holds us back;
    /// side requests go when the real ones leave them room.
    fn pump(&mut self) {
        self.pump_prompt();
        self.pump_side();
    }

    fn pump_prompt(&mut self) {
        let Some(c) = self.current.as_mut() else {
            return;
        };
        let Some(session) = c.session.clone() else {
            return;
        };
        if c.blocked
            || c.paused_until.is_some()
            || c.side.choosing.is_some()
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
            Done::Side(done) => self.side_done(done),
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
