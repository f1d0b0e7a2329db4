//! The hover preview: when the pointer rests over the image, the selection a green click
//! there would give is shown lightly (a thin cyan outline over a faint veil), so a good
//! spot is found before clicking. With dots placed it previews adding one more.
//!
//! The look goes through the worker as a [`Command::Preview`]: latest wins, one call at a
//! time and only while no real prompt waits, so sweeping the pointer never floods the
//! engine. A preview is never the document's result: it lives here, apart from the
//! [`super::document::Document`], and goes when the pointer leaves, moves away, or the
//! dots change. Its picture is built off the UI thread.

use std::sync::Arc;
use std::time::Duration;

use egui::{Color32, ColorImage, Pos2, TextureHandle};
use serde::{Deserialize, Serialize};

use crate::engine::{AlphaMask, Dot, EngineKind, Prompt};
use crate::worker::Command;

use super::App;
use super::engine_link::SessionState;
use super::inbox::Inbox;
use super::input::dot_at;
use super::outline::outline_image;

/// The hover preview's settings (Settings window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HoverSettings {
    /// On or off as the user chose; `None` follows the engine: on for local engines, off
    /// for the hosted API, where every look is a paid-for call on the network.
    pub enabled: Option<bool>,
    /// How long the pointer rests before a preview is asked for.
    pub delay_ms: u32,
}

impl Default for HoverSettings {
    fn default() -> Self {
        HoverSettings {
            enabled: None,
            delay_ms: 100,
        }
    }
}

impl HoverSettings {
    pub fn active(&self, engine: EngineKind) -> bool {
        self.enabled.unwrap_or(engine != EngineKind::Api)
    }

    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms.clamp(10, 5000) as u64)
    }
}

/// The Settings window's part for the hover preview.
pub(crate) fn settings_ui(ui: &mut egui::Ui, hover: &mut HoverSettings, engine: EngineKind) {
    let mut on = hover.active(engine);
    ui.horizontal(|ui| {
        if ui
            .checkbox(&mut on, "Preview the selection under the resting pointer")
            .on_hover_text("Off by default for the AI Cut API: each look is a call")
            .changed()
        {
            hover.enabled = Some(on);
        }
        ui.add_enabled(
            on,
            egui::DragValue::new(&mut hover.delay_ms)
                .range(10..=2000)
                .suffix(" ms"),
        );
    });
}

/// A preview picture on screen.
struct Shown {
    /// The dots it adds one to, and the pixel of that one.
    base: Prompt,
    at: [u32; 2],
    prompt: Prompt,
    texture: TextureHandle,
}

/// A picture built off the UI thread for the preview of `prompt`.
struct Built {
    prompt: Prompt,
    at: [u32; 2],
    image: ColorImage,
}

/// Where the preview stands.
pub(crate) struct HoverPreview {
    /// The pixel under the pointer and since when it is there, on egui's clock (the
    /// frame's input time: the window system's in the app, the harness's in tests).
    rest: Option<([u32; 2], f64)>,
    /// The newest preview asked of the worker.
    asked: Option<(Prompt, [u32; 2])>,
    shown: Option<Shown>,
    built: Inbox<Built>,
}

/// How far (points) the pointer may move from a preview's spot before it goes.
const KEEP_WITHIN: f32 = 10.0;

impl HoverPreview {
    pub fn new(wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        HoverPreview {
            rest: None,
            asked: None,
            shown: None,
            built: Inbox::new(wake),
        }
    }

    /// The prompt of the preview on screen.
    pub fn shown_prompt(&self) -> Option<&Prompt> {
        self.shown.as_ref().map(|s| &s.prompt)
    }

    /// The prompt of the newest preview asked of the worker, shown or not yet.
    pub fn asked_prompt(&self) -> Option<&Prompt> {
        self.asked.as_ref().map(|(p, _)| p)
    }

    /// Forgets everything (the image changed).
    pub fn reset(&mut self) {
        self.rest = None;
        self.asked = None;
        self.shown = None;
    }
}

/// The prompt `base` plus a green dot on pixel `at`.
fn with_green(base: &Prompt, [x, y]: [u32; 2]) -> Prompt {
    let mut p = base.clone();
    p.green.push(Dot::new(x as f64, y as f64));
    p
}

impl App {
    /// Follows the pointer over the canvas: asks for a preview once it rests, drops the
    /// preview when it leaves, moves away, or a button, Shift or a dot is under it.
    pub(super) fn hover_frame(&mut self, ctx: &egui::Context, hover: Option<Pos2>, calm: bool) {
        self.take_built_previews(ctx);
        let ready = matches!(self.engine.session, SessionState::Ready);
        let active = self.settings.hover.active(self.settings.engine) && ready && calm;
        let Some(open) = self.open.as_ref() else {
            return;
        };
        let base = open.doc.prompt();
        let target = hover
            .filter(|_| active)
            .filter(|p| dot_at(&open.view, open.doc.dots(), *p).is_none())
            .and_then(|p| Some((p, open.view.pixel_at(p, open.doc.size())?)));
        let h = &mut self.tools.hover;
        let Some((pointer, px)) = target else {
            if h.asked.take().is_some() {
                self.engine.send(Command::Preview(None));
            }
            h.rest = None;
            h.shown = None;
            return;
        };
        let stale = h.shown.as_ref().is_some_and(|s| {
            let spot = open
                .view
                .image_to_screen(egui::pos2(s.at[0] as f32 + 0.5, s.at[1] as f32 + 0.5));
            s.base != base || (spot - pointer).length() > KEEP_WITHIN
        });
        if stale {
            h.shown = None;
        }
        let now = ctx.input(|i| i.time);
        let since = match h.rest {
            Some((at, since)) if at == px => since,
            _ => {
                h.rest = Some((px, now));
                now
            }
        };
        let delay = self.settings.hover.delay();
        let waited = Duration::from_secs_f64((now - since).max(0.0));
        if waited < delay {
            ctx.request_repaint_after(delay - waited);
            return;
        }
        let prompt = with_green(&base, px);
        if h.asked.as_ref().is_none_or(|(p, _)| *p != prompt) {
            h.asked = Some((prompt.clone(), px));
            self.engine.send(Command::Preview(Some(prompt)));
        }
    }

    /// The worker's answer to a preview: its picture is built if it is still wanted.
    pub(super) fn preview_arrived(&mut self, prompt: Prompt, mask: Arc<AlphaMask>) {
        let h = &self.tools.hover;
        let Some((_, at)) = h.asked.as_ref().filter(|(p, _)| *p == prompt) else {
            return;
        };
        let Some(open) = self.open.as_ref() else {
            return;
        };
        let (at, size) = (*at, open.pictures.display_size());
        h.built.spawn("preview", move || Built {
            image: outline_image(&mask, size, LINE, VEIL),
            prompt,
            at,
        });
    }

    /// Shows the newest built picture that is still the one asked for.
    fn take_built_previews(&mut self, ctx: &egui::Context) {
        let h = &mut self.tools.hover;
        while let Some(b) = h.built.try_recv() {
            if h.asked.as_ref().is_none_or(|(p, _)| *p != b.prompt) {
                continue;
            }
            let Some(open) = self.open.as_ref() else {
                return;
            };
            let texture = ctx.load_texture("preview", b.image, egui::TextureOptions::LINEAR);
            h.shown = Some(Shown {
                base: open.doc.prompt(),
                at: b.at,
                prompt: b.prompt,
                texture,
            });
        }
    }
}

/// The veil inside the preview, and its outline: light, and unlike the selection's
/// blue tint with yellow outline.
const VEIL: Color32 = Color32::from_rgba_premultiplied(40, 40, 40, 40);
const LINE: Color32 = Color32::from_rgb(0, 225, 255);

/// Draws the preview, if one is shown, over the image rectangle `img_rect`.
pub(crate) fn draw(painter: &egui::Painter, hover: &HoverPreview, img_rect: egui::Rect) {
    if let Some(s) = &hover.shown {
        super::outline::draw_over_image(painter, &s.texture, img_rect);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preview_is_off_by_default_only_for_the_hosted_api() {
        let s = HoverSettings::default();
        assert!(s.active(EngineKind::Builtin) && s.active(EngineKind::Sam));
        assert!(!s.active(EngineKind::Api));
        let on = HoverSettings {
            enabled: Some(true),
            ..s
        };
        assert!(on.active(EngineKind::Api));
        let back: HoverSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(back, s);
    }
}
