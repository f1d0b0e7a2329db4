//! The editor's tools for daily work, beside the core of dots, views and saving: the
//! hover preview ([`super::hover`]), strokes ([`super::stroke`]), the loupe
//! ([`super::loupe`]), candidates ([`super::candidates`]), comparing with the original
//! and the Outline view ([`super::outline`]), and batches ([`super::batch`]). Their keys
//! and gestures become [`ToolAction`]s here, carried out by `App::tool_action`.

use std::path::PathBuf;
use std::sync::Arc;

use egui::{Key, Modifiers, Painter, Pos2};

use super::App;
use super::batch::Batches;
use super::candidates::Candidates;
use super::commands::Action;
use super::dots::{DotKind, PlacedDot};
use super::hover::HoverPreview;
use super::input::PointerInput;
use super::loupe::Loupe;
use super::outline::OutlineView;
use super::stroke::{self, StrokeGesture, StrokeInput};
use crate::worker::Command;

/// What the tools' keys and gestures ask for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ToolAction {
    /// A finished stroke's dots, added as one undoable step.
    Stroke(Vec<PlacedDot>),
    /// Tab (forward) / Shift+Tab: the engine's next answer for the dots.
    NextCandidate { forward: bool },
    /// PageDown (+1) / PageUp (-1) in a batch.
    StepBatch(isize),
    /// Several files or folders to work through.
    OpenBatch(Vec<PathBuf>),
    /// Ctrl+Shift+O.
    OpenFolder,
    /// Ctrl+Shift+S: the batch's dots into sidecar files.
    SaveProject,
}

/// The tools' state.
pub(crate) struct Tools {
    pub hover: HoverPreview,
    pub stroke: Option<StrokeGesture>,
    pub loupe: Loupe,
    pub candidates: Candidates,
    pub outline: OutlineView,
    pub batches: Batches,
    /// The original is shown instead of the view (O held) this frame.
    pub comparing: bool,
}

impl Tools {
    pub fn new(wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        Tools {
            hover: HoverPreview::new(wake.clone()),
            stroke: None,
            loupe: Loupe::default(),
            candidates: Candidates::new(wake.clone()),
            outline: OutlineView::new(wake.clone()),
            batches: Batches::new(wake),
            comparing: false,
        }
    }
}

/// Whether the compare key (O, held) asks to see the original.
pub fn showing_original(ctx: &egui::Context) -> bool {
    !ctx.egui_wants_keyboard_input()
        && ctx.input(|i| i.key_down(Key::O) && !i.modifiers.command && !i.modifiers.alt)
}

/// The tools' keys, and several files dropped at once. Runs before the other shortcuts:
/// egui matches Ctrl+O to Ctrl+Shift+O too, so the longer ones go first.
pub(crate) fn keys(ctx: &egui::Context) -> Vec<Action> {
    use Modifiers as M;
    let mut out = Vec::new();
    let dropped: Vec<PathBuf> = ctx.input(|i| {
        i.raw
            .dropped_files
            .iter()
            .map(|f| f.path().to_path_buf())
            .collect()
    });
    if dropped.len() > 1 {
        out.push(Action::Tool(ToolAction::OpenBatch(dropped)));
    }
    if ctx.egui_wants_keyboard_input() {
        return out;
    }
    let pressed = |m: Modifiers, k: Key| ctx.input_mut(|i| i.consume_key(m, k));
    let mut on = |yes: bool, action: ToolAction| {
        if yes {
            out.push(Action::Tool(action));
        }
    };
    on(
        pressed(M::COMMAND | M::SHIFT, Key::O),
        ToolAction::OpenFolder,
    );
    on(
        pressed(M::COMMAND | M::SHIFT, Key::S),
        ToolAction::SaveProject,
    );
    let back = pressed(M::SHIFT, Key::Tab);
    let forward = pressed(M::NONE, Key::Tab);
    if back || forward {
        // Tab is the editor's, not egui's walk through the toolbar's buttons (a focused
        // button would hold the keyboard and mute every shortcut).
        ctx.memory_mut(|m| m.move_focus(egui::FocusDirection::None));
    }
    on(back, ToolAction::NextCandidate { forward: false });
    on(forward, ToolAction::NextCandidate { forward: true });
    on(pressed(M::NONE, Key::PageDown), ToolAction::StepBatch(1));
    on(pressed(M::NONE, Key::PageUp), ToolAction::StepBatch(-1));
    out
}

impl App {
    pub(super) fn tool_action(&mut self, action: ToolAction) {
        match action {
            ToolAction::Stroke(dots) => self.add_stroke(&dots),
            ToolAction::NextCandidate { forward } => self.next_candidate(forward),
            ToolAction::StepBatch(delta) => self.batch_step(delta),
            ToolAction::OpenBatch(paths) => self.open_batch(paths),
            ToolAction::OpenFolder => self.open_folder_dialog(),
            ToolAction::SaveProject => self.save_project(),
        }
    }

    fn add_stroke(&mut self, dots: &[PlacedDot]) {
        let Some(open) = self.open.as_mut() else {
            return;
        };
        if open.doc.add_stroke(dots) {
            open.pictures.forget_stale(&open.doc);
            self.engine.send(Command::Prompt(open.doc.prompt()));
        }
    }

    /// The tools' part of the canvas's pointer input: strokes, then the hover preview
    /// (only while the pointer is calm: no button, no Shift, no loupe, nothing dragged).
    pub(super) fn tools_pointer(
        &mut self,
        ctx: &egui::Context,
        pointer: &PointerInput,
        stroke_input: StrokeInput,
    ) {
        if let Some(open) = self.open.as_ref() {
            let (view, size) = (open.view, open.doc.size());
            if let Some(dots) = stroke::follow(&stroke_input, &view, size, &mut self.tools.stroke) {
                self.apply(Action::Tool(ToolAction::Stroke(dots)));
            }
        }
        let busy_pointer = ctx.input(|i| i.pointer.any_down());
        let calm = !busy_pointer
            && !pointer.dragged
            && !pointer.space
            && !pointer.modifiers.shift
            && !super::loupe::held(ctx)
            && self.tools.stroke.is_none()
            && self.open.as_ref().is_some_and(|o| o.gesture.drag.is_none());
        self.hover_frame(ctx, pointer.hover, calm);
    }

    /// Everything the tools draw over the canvas: the stroke being drawn, the answer
    /// badge and thumbnails, the loupe.
    pub(super) fn draw_tools(
        &mut self,
        ctx: &egui::Context,
        ui: &mut egui::Ui,
        painter: &Painter,
        hover: Option<Pos2>,
    ) {
        if let (Some(open), Some(s)) = (self.open.as_ref(), self.tools.stroke.as_ref()) {
            let colour = match s.kind {
                DotKind::Green => egui::Color32::from_rgb(40, 200, 70),
                DotKind::Red => egui::Color32::from_rgb(235, 50, 50),
            };
            stroke::draw(painter, &open.view, s, colour);
        }
        self.draw_candidate_badge(painter, self.canvas.rect);
        if let Some(i) = self.candidate_strip(ui, self.canvas.rect) {
            self.show_candidate(i);
        }
        self.draw_loupe(ctx, painter, hover);
    }

    /// A new image is shown: looks at the last one go; a batch image gets its dots back.
    pub(super) fn tools_opened(&mut self, path: Option<&std::path::Path>) {
        self.tools.hover.reset();
        self.tools.candidates.reset();
        self.tools.stroke = None;
        self.batch_opened(path);
    }

    // ---- read-only views for tests ----

    /// The prompt of the hover preview on screen (never the document's result).
    pub fn hover_preview(&self) -> Option<&crate::engine::Prompt> {
        self.tools.hover.shown_prompt()
    }

    /// The prompt of the newest hover preview asked for, before any answer arrives.
    pub fn hover_asked(&self) -> Option<&crate::engine::Prompt> {
        self.tools.hover.asked_prompt()
    }

    /// The image pixel the loupe was drawn around this frame.
    pub fn loupe(&self) -> Option<[u32; 2]> {
        self.tools.loupe.drawn
    }

    /// Whether the canvas showed the original instead of the view (O held).
    pub fn comparing(&self) -> bool {
        self.tools.comparing
    }

    /// The serial of the mask the Outline view shows.
    pub fn outline_serial(&self) -> Option<u64> {
        self.tools.outline.shown_serial()
    }

    /// The serial of the mask the selection overlay shows (candidates change it without
    /// a new request).
    pub fn overlay_serial(&self) -> Option<u64> {
        let open = self.open.as_ref()?;
        open.pictures
            .layer(super::tasks::LayerKind::Tint)
            .map(|l| l.serial)
    }
}
