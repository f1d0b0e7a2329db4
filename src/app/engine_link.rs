//! The editor's side of the [`crate::worker`]: which engine runs, where its session
//! stands, and what the worker's reports change on screen.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::{AlphaMask, Engine, EngineError, Prompt};
use crate::imageio::LoadedImage;
use crate::worker::{self, Command, Event, WorkerHandle, WorkerPolicy};

use super::App;
use super::messages::{Banner, BannerAction};
use super::settings::{Settings, build_engine, worker_policy};

/// Where the engine session stands, for the status bar.
#[derive(Debug, Clone)]
pub enum SessionState {
    NoImage,
    Initializing(Instant),
    Ready,
    Expired,
    Failed(String),
    /// The user cancelled preparing the image; Retry starts again.
    Cancelled,
}

/// The worker and what it last said.
pub(crate) struct EngineLink {
    worker: WorkerHandle,
    /// The engine the worker runs, polled for its progress while it prepares an image.
    engine: Arc<dyn Engine>,
    /// The worker numbers the images it opens; this mirrors its count so that reports
    /// about an earlier image are recognised and dropped.
    worker_image: u64,
    /// An engine the options impose (tests) whatever the settings say.
    imposed: Option<(Arc<dyn Engine>, WorkerPolicy)>,
    pub name: String,
    pub session: SessionState,
    /// Engine calls are in flight.
    pub busy: bool,
    /// A transient failure the worker retries by itself.
    pub retry_note: Option<String>,
    /// How long the shown mask took, from prompt to result.
    pub last_round_trip: Option<Duration>,
}

impl EngineLink {
    /// Starts a worker on the imposed engine or the one the settings choose. When that
    /// choice cannot be honoured the built-in engine stands in, and the problem comes back
    /// to be shown.
    pub fn start(
        imposed: Option<(Arc<dyn Engine>, WorkerPolicy)>,
        settings: &Settings,
        api_key: &str,
        wake: worker::Notify,
    ) -> (Self, Option<String>) {
        let (engine, policy, problem) = match imposed.clone() {
            Some((engine, policy)) => (engine, policy, None),
            None => match build_engine(settings, api_key) {
                Ok(engine) => (engine, worker_policy(settings.engine), None),
                Err(problem) => {
                    let builtin = Settings {
                        engine: crate::engine::EngineKind::Builtin,
                        ..settings.clone()
                    };
                    let engine =
                        build_engine(&builtin, "").expect("the built-in engine always builds");
                    let problem = format!("{problem} Using the built-in engine meanwhile.");
                    (engine, worker_policy(builtin.engine), Some(problem))
                }
            },
        };
        let link = EngineLink {
            name: engine.name(),
            worker: worker::spawn(engine.clone(), policy, wake),
            engine,
            worker_image: 0,
            imposed,
            session: SessionState::NoImage,
            busy: false,
            retry_note: None,
            last_round_trip: None,
        };
        (link, problem)
    }

    /// Opens an image in the worker: a new session, numbered requests from 1.
    pub fn open(&mut self, image: Arc<LoadedImage>) {
        self.worker.send(Command::Open(image));
        self.worker_image += 1;
    }

    pub fn send(&self, command: Command) {
        self.worker.send(command);
    }

    pub fn try_event(&self) -> Option<Event> {
        self.worker.try_event()
    }

    /// How far the engine has got preparing the open image, when it can tell.
    pub fn progress(&self) -> Option<f32> {
        match self.session {
            SessionState::Initializing(_) => self.engine.progress(),
            _ => None,
        }
    }
}

/// The image an event is about.
fn event_image(ev: &Event) -> u64 {
    match ev {
        Event::Initializing { image }
        | Event::Ready { image, .. }
        | Event::Mask { image, .. }
        | Event::Busy { image, .. }
        | Event::Retrying { image, .. }
        | Event::SessionExpired { image }
        | Event::Failed { image, .. }
        | Event::Preview { image, .. }
        | Event::Candidates { image, .. } => *image,
    }
}

impl App {
    /// Takes in one report from the worker; reports about an earlier image are dropped.
    pub(super) fn worker_event(&mut self, ev: Event) {
        // After a cancel the worker closed the image: what it still says about it is moot.
        let cancelled = matches!(self.engine.session, SessionState::Cancelled);
        if event_image(&ev) != self.engine.worker_image || cancelled {
            return;
        }
        match ev {
            Event::Initializing { .. } => {
                self.engine.session = SessionState::Initializing(Instant::now())
            }
            Event::Ready { .. } => self.session_ready(),
            Event::Busy { busy, .. } => self.engine.busy = busy,
            Event::Retrying { after, error, .. } => {
                self.engine.retry_note = Some(format!(
                    "{}; trying again in {:.0} s",
                    short_error(&error),
                    after.as_secs_f32().ceil()
                ));
            }
            Event::SessionExpired { .. } => self.session_expired(),
            Event::Failed { error, .. } => self.engine_failed(error),
            Event::Mask {
                request_number,
                prompt,
                mask,
                round_trip,
                ..
            } => self.mask_arrived(request_number, mask, prompt, round_trip),
            Event::Preview { prompt, mask, .. } => self.preview_arrived(prompt, mask),
            Event::Candidates { prompt, result, .. } => self.candidates_arrived(prompt, result),
        }
    }

    fn session_ready(&mut self) {
        self.engine.session = SessionState::Ready;
        self.engine.retry_note = None;
        // A problem with the settings stays until they change; others are over.
        self.messages
            .dismiss_banner_if(|a| a != BannerAction::Settings);
    }

    fn session_expired(&mut self) {
        self.engine.session = SessionState::Expired;
        self.messages.banner = Some(Banner {
            text: "The AI Cut session expired. Your dots are kept; a new session \
                   uploads the image again and costs 1 credit."
                .into(),
            action: BannerAction::NewSession,
        });
    }

    fn engine_failed(&mut self, error: EngineError) {
        if !matches!(self.engine.session, SessionState::Ready) {
            self.engine.session = SessionState::Failed(short_error(&error));
        }
        self.engine.retry_note = None;
        let action = match error {
            EngineError::Unauthorized(_) | EngineError::InsufficientCredits(_) => {
                BannerAction::Settings
            }
            EngineError::BadRequest(_) | EngineError::Image(_) => BannerAction::None,
            _ => BannerAction::Retry,
        };
        self.messages.banner = Some(Banner {
            text: error_advice(&error),
            action,
        });
    }

    /// Shows a mask if the document accepts it (newer than the one shown, see
    /// [`super::document::Document::accept_mask`]). The overlay the view needs is built by
    /// `update_layers` this frame.
    fn mask_arrived(
        &mut self,
        request_number: u64,
        mask: Arc<AlphaMask>,
        prompt: Prompt,
        round_trip: Duration,
    ) {
        let Some(open) = self.open.as_mut() else {
            return;
        };
        if !open.doc.accept_mask(request_number, mask, prompt) {
            return;
        }
        self.engine.last_round_trip = Some(round_trip);
        self.engine.retry_note = None;
        self.messages
            .dismiss_banner_if(|a| a == BannerAction::Retry);
    }

    /// Starts a new worker on the engine the settings now choose; the open image and its
    /// dots go to it at once.
    pub(super) fn restart_engine(&mut self) {
        let (mut link, problem) = EngineLink::start(
            self.engine.imposed.take(),
            &self.settings,
            &self.api_key.value,
            self.wake(),
        );
        link.last_round_trip = self.engine.last_round_trip;
        // Dropping the old worker stops it and cancels its calls.
        self.engine = link;
        self.messages.banner = problem.map(Banner::settings);
        if let Some(open) = self.open.as_mut() {
            open.doc.restart_numbering();
            self.engine.open(open.doc.image().clone());
            self.engine.send(Command::Prompt(open.doc.prompt()));
        }
    }
}

/// One line about an engine error, for the status bar.
fn short_error(e: &EngineError) -> String {
    match e {
        EngineError::Unauthorized(_) => "API key missing or invalid".into(),
        EngineError::InsufficientCredits(_) => "out of credits".into(),
        EngineError::SessionNotFound(_) => "session expired".into(),
        EngineError::RateLimited { .. } => "rate limited".into(),
        EngineError::Transport(_) => "network problem".into(),
        other => {
            let s = other.to_string();
            s.chars().take(60).collect()
        }
    }
}

/// An engine error with what to do next.
fn error_advice(e: &EngineError) -> String {
    let next = match e {
        EngineError::Unauthorized(_) => {
            "Open Settings and enter a valid AI Cut API key, or switch to the built-in engine."
        }
        EngineError::InsufficientCredits(_) => {
            "Add credits to your AI Cut account, or switch to the built-in engine in Settings."
        }
        EngineError::RateLimited { .. } => "Wait a moment, then press Retry.",
        EngineError::Transport(_) | EngineError::Protocol(_) => {
            "Check the network and the API address in Settings, then press Retry."
        }
        _ => "Your dots are kept; press Retry or change the dots.",
    };
    format!("{e}. {next}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_key_points_to_the_settings() {
        let advice = error_advice(&EngineError::Unauthorized("invalid key".into()));
        assert!(
            advice.contains("API key") && advice.contains("Settings"),
            "{advice}"
        );
        assert_eq!(
            short_error(&EngineError::Unauthorized("x".into())),
            "API key missing or invalid"
        );
    }
}
