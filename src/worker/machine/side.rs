//! Side requests: looks at answers that are not the shown result. A hover preview asks
//! what one more dot would give; candidates ask for the engine's alternatives to a
//! prompt; choose makes one of them the answer. They take numbers from the same count as
//! real prompts (the hosted API wants them increasing) but never touch what is shown,
//! and previews only run when no real prompt waits or runs, one at a time, newest first:
//! a pointer sweeping over the photo never queues a storm of calls.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::{Done, Worker};
use crate::engine::{AlphaMask, EngineError, Prompt};
use crate::worker::Event;

/// What is asked for and what runs, per image.
#[derive(Default)]
pub(super) struct SideRequests {
    /// The newest preview asked for and not yet sent.
    preview: Option<Prompt>,
    preview_task: Option<AbortHandle>,
    candidates: Option<Prompt>,
    candidates_task: Option<AbortHandle>,
    /// A choice being made: real prompts wait for it, so they refine the chosen answer.
    pub choosing: Option<AbortHandle>,
}

impl SideRequests {
    pub fn abort(&mut self) {
        for t in [
            self.preview_task.take(),
            self.candidates_task.take(),
            self.choosing.take(),
        ]
        .into_iter()
        .flatten()
        {
            t.abort();
        }
    }
}

/// A finished side request.
pub(in crate::worker) enum SideDone {
    Preview {
        image: u64,
        prompt: Prompt,
        result: Result<AlphaMask, EngineError>,
    },
    Candidates {
        image: u64,
        prompt: Prompt,
        result: Result<Vec<AlphaMask>, EngineError>,
    },
    Chosen {
        image: u64,
        result: Result<(), EngineError>,
    },
}

impl Worker {
    pub(super) fn preview(&mut self, prompt: Option<Prompt>) {
        let Some(c) = self.current.as_mut() else {
            return;
        };
        c.side.preview = prompt.filter(|p| !p.green.is_empty());
        self.pump_side();
    }

    pub(super) fn candidates(&mut self, prompt: Prompt) {
        let Some(c) = self.current.as_mut() else {
            return;
        };
        if prompt.green.is_empty() {
            return;
        }
        c.side.candidates = Some(prompt);
        self.pump_side();
    }

    pub(super) fn choose(&mut self, prompt: Prompt, index: usize) {
        let Some(c) = self.current.as_mut() else {
            return;
        };
        let Some(session) = c.session.clone() else {
            return;
        };
        if let Some(t) = c.side.choosing.take() {
            t.abort();
        }
        let (engine, done, image) = (self.engine.clone(), self.done_tx.clone(), c.id);
        c.side.choosing = Some(spawn_report(done, async move {
            let result = engine.choose(&session, &prompt, index).await;
            SideDone::Chosen { image, result }
        }));
    }

    /// Starts the side requests there is room for: candidates whenever the session is
    /// free to take calls, a preview only when nothing else runs or waits.
    pub(super) fn pump_side(&mut self) {
        let Some(c) = self.current.as_mut() else {
            return;
        };
        let Some(session) = c.session.clone() else {
            return;
        };
        if c.blocked || c.paused_until.is_some() || c.side.choosing.is_some() {
            return;
        }
        let (engine, done, image) = (self.engine.clone(), self.done_tx.clone(), c.id);
        if c.side.candidates_task.is_none()
            && let Some(prompt) = c.side.candidates.take()
        {
            let number = take_number(&mut c.next_number);
            let (engine, session) = (engine.clone(), session.clone());
            c.side.candidates_task = Some(spawn_report(done.clone(), async move {
                let result = engine.candidates(&session, &prompt, number).await;
                SideDone::Candidates {
                    image,
                    prompt,
                    result,
                }
            }));
        }
        let idle = !c.pending && c.in_flight.is_empty() && c.side.candidates_task.is_none();
        if idle
            && c.side.preview_task.is_none()
            && let Some(prompt) = c.side.preview.take()
        {
            let number = take_number(&mut c.next_number);
            c.side.preview_task = Some(spawn_report(done, async move {
                let result = engine.segment(&session, &prompt, number).await;
                SideDone::Preview {
                    image,
                    prompt,
                    result,
                }
            }));
        }
    }

    pub(super) fn side_done(&mut self, done: SideDone) {
        let Some(c) = self.current.as_mut() else {
            return;
        };
        match done {
            SideDone::Preview {
                image,
                prompt,
                result,
            } if image == c.id => {
                c.side.preview_task = None;
                // A failed look is not worth a banner: the click will say what is wrong.
                if let Ok(mask) = result {
                    let mask = Arc::new(mask);
                    self.emit(Event::Preview {
                        image,
                        prompt,
                        mask,
                    });
                }
            }
            SideDone::Candidates {
                image,
                prompt,
                result,
            } if image == c.id => {
                c.side.candidates_task = None;
                let result = result.map(|masks| masks.into_iter().map(Arc::new).collect());
                self.emit(Event::Candidates {
                    image,
                    prompt,
                    result,
                });
            }
            SideDone::Chosen { image, result } if image == c.id => {
                c.side.choosing = None;
                if let Err(e) = result {
                    tracing::warn!(error = %e, "the engine did not take the chosen candidate");
                }
            }
            _ => return,
        }
        self.pump();
    }
}

fn take_number(next: &mut u64) -> u64 {
    let n = *next;
    *next += 1;
    n
}

/// Runs a side request as a task that reports when it ends.
fn spawn_report(
    done: mpsc::UnboundedSender<Done>,
    request: impl Future<Output = SideDone> + Send + 'static,
) -> AbortHandle {
    let task = tokio::spawn(async move {
        let _ = done.send(Done::Side(request.await));
    });
    task.abort_handle()
}
