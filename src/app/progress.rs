//! Long work on screen: opening (decoding) a file, the engine preparing an image (a SAM
//! model loading, then encoding) and saving a cut-out. Each shows a row with a progress
//! bar where the work can tell how far it is, otherwise a spinner with the time spent, and
//! a Cancel button; Esc cancels them all. Cancelling never waits for the work: a decode
//! is abandoned (its result is dropped, the open image stays), the engine's preparation
//! is stopped by aborting it (a SAM encode stops at its next stage; the image and its dots
//! stay; Retry prepares it again), and a save is told to stop before it writes (saves are atomic, so no partial
//! file is ever left).

use std::time::{Duration, Instant};

use egui::{Color32, RichText};

use super::App;
use super::commands::Action;
use super::engine_link::SessionState;
use super::messages::{Banner, BannerAction};
use crate::worker::Command;

/// Work that can be cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Work {
    /// A file being decoded.
    Open,
    /// The engine preparing the open image (model load and encoding).
    Prepare,
    /// A cut-out being written.
    Save,
}

/// Rows appear only for work that lasts longer than this, so quick opens do not flicker.
pub const SHOW_AFTER: Duration = Duration::from_millis(250);

/// One row of the panel.
struct Row {
    work: Work,
    text: String,
    /// How far it is, when the work can tell.
    fraction: Option<f32>,
    since: Instant,
}

impl App {
    /// The long work running now, longest first.
    fn running_work(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        if let (Some(path), Some(since)) = (&self.files.loading, self.files.loading_since) {
            let name = crate::imageio::display_name(path);
            rows.push(Row {
                work: Work::Open,
                text: format!("Opening {name}"),
                fraction: None,
                since,
            });
        }
        if let SessionState::Initializing(since) = self.engine.session {
            let fraction = self.engine.progress();
            let text = match fraction {
                Some(f) => format!("Preparing the image: {:.0} %", f * 100.0),
                None => format!("Preparing the image ({})", self.engine.name),
            };
            rows.push(Row {
                work: Work::Prepare,
                text,
                fraction,
                since,
            });
        }
        if let Some(since) = self.files.saving_since {
            rows.push(Row {
                work: Work::Save,
                text: "Saving the cut-out".into(),
                fraction: None,
                since,
            });
        }
        rows.sort_by_key(|r| r.since);
        rows
    }

    /// Whether any long work is running (Esc cancels it then).
    pub(super) fn work_running(&self) -> bool {
        !self.running_work().is_empty()
    }

    /// Esc while long work runs: cancel it all (before other uses of Esc see the key).
    pub(super) fn cancel_keys(&self, ctx: &egui::Context) -> Vec<Action> {
        if !self.work_running() {
            return Vec::new();
        }
        let esc = ctx.input_mut(|i| i.consume_key(egui::Modifiers::NONE, egui::Key::Escape));
        if !esc {
            return Vec::new();
        }
        self.running_work()
            .into_iter()
            .map(|r| Action::Cancel(r.work))
            .collect()
    }

    /// The panel of running work over the canvas's top edge; returns the Cancel clicked.
    pub(super) fn progress_panel(&self, ctx: &egui::Context) -> Vec<Action> {
        let now = Instant::now();
        let rows: Vec<Row> = self.running_work();
        if rows.is_empty() {
            return Vec::new();
        }
        // Timers tick and rows appear without input.
        ctx.request_repaint_after(Duration::from_millis(100));
        let shown: Vec<&Row> = rows
            .iter()
            .filter(|r| now.duration_since(r.since) >= SHOW_AFTER)
            .collect();
        if shown.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let top = self.canvas.rect.top().max(0.0) + 8.0;
        egui::Area::new(egui::Id::unique("aicut-progress"))
            .anchor(egui::Align2::CENTER_TOP, [0.0, top])
            .order(egui::Order::Foreground)
            .show(ctx, |ui| {
                egui::Frame::popup(ui.style()).show(ui, |ui| {
                    for row in shown {
                        if row_ui(ui, row, now) {
                            out.push(Action::Cancel(row.work));
                        }
                    }
                    let hint = RichText::new("Esc cancels").small().color(Color32::GRAY);
                    ui.label(hint);
                });
            });
        out
    }

    /// Cancels one piece of long work; the document stays as it was.
    pub(super) fn cancel(&mut self, work: Work) {
        match work {
            Work::Open if self.files.loading.is_some() => {
                // The decode's result carries the old number and is dropped on arrival.
                self.files.open_gen += 1;
                self.files.loading = None;
                self.files.loading_since = None;
                self.batch_back_to_shown();
                self.toast("Opening cancelled", false);
            }
            Work::Prepare if matches!(self.engine.session, SessionState::Initializing(_)) => {
                // Closing the session aborts its initialize; later reports are dropped.
                self.engine.send(Command::Close);
                self.engine.session = SessionState::Cancelled;
                self.engine.busy = false;
                self.messages.banner = Some(Banner {
                    text: "Cancelled: the engine stopped getting the image ready. Your \
                           dots are kept; press Retry to start again."
                        .into(),
                    action: BannerAction::Retry,
                });
            }
            Work::Save => {
                if let Some(flag) = &self.files.save_cancel {
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
            _ => {}
        }
    }

    /// Retry after a cancelled preparation: the open image goes to the engine again, with
    /// its dots.
    pub(super) fn prepare_again(&mut self) {
        let Some(open) = self.open.as_mut() else {
            return;
        };
        open.doc.restart_numbering();
        self.engine.open(open.doc.image().clone());
        self.engine.session = SessionState::Initializing(Instant::now());
        self.engine.send(Command::Prompt(open.doc.prompt()));
    }
}

/// One row: bar or spinner, text and time, Cancel; returns whether Cancel was clicked.
fn row_ui(ui: &mut egui::Ui, row: &Row, now: Instant) -> bool {
    let secs = now.duration_since(row.since).as_secs();
    ui.horizontal(|ui| {
        let text = format!("{} ({secs} s)", row.text);
        match row.fraction {
            Some(f) => {
                ui.add(egui::ProgressBar::new(f).desired_width(320.0).text(text));
            }
            None => {
                ui.spinner();
                ui.label(text);
            }
        }
        ui.button("Cancel").on_hover_text("Esc").clicked()
    })
    .inner
}
