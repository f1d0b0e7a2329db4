//! Outline pictures: the edge of a mask as a thin line over the photo, with an optional
//! veil inside. The hover preview draws its look with one (a cyan line, a faint veil);
//! the Outline view shows the cut as its edge alone, to judge it against the photo.
//! Built off the UI thread, at the display copy's size.

use std::sync::Arc;

use egui::{Color32, ColorImage, Painter, Pos2, Rect, TextureHandle, pos2};
use image::imageops;

use crate::engine::AlphaMask;

use super::document::Document;
use super::inbox::Inbox;

/// The Outline view's line.
const EDGE_LINE: Color32 = Color32::from_rgb(255, 214, 0);

/// The edge of `mask` at `size` in `line` (the inside pixels next to the outside), the
/// rest of the inside in `veil`, the outside transparent.
pub fn outline_image(
    mask: &AlphaMask,
    size: [usize; 2],
    line: Color32,
    veil: Color32,
) -> ColorImage {
    let [w, h] = size;
    let small;
    let m = if [mask.width() as usize, mask.height() as usize] == size {
        mask.as_raw()
    } else {
        let f = imageops::FilterType::Triangle;
        small = imageops::resize(mask, w as u32, h as u32, f);
        small.as_raw()
    };
    // Two display pixels on big pictures, so the line survives being shown smaller.
    let r = (w.max(h) / 1200).clamp(1, 3);
    let inside = |x: usize, y: usize| m[y * w + x] >= 128;
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let here = inside(x, y);
            let edge = here
                && (1..=r).any(|d| {
                    (x < d || !inside(x - d, y))
                        || (x + d >= w || !inside(x + d, y))
                        || (y < d || !inside(x, y - d))
                        || (y + d >= h || !inside(x, y + d))
                });
            out.push(match (here, edge) {
                (_, true) => line,
                (true, false) => veil,
                _ => Color32::TRANSPARENT,
            });
        }
    }
    ColorImage::new(size, out)
}

/// Draws a picture made for the whole image over `img_rect`.
pub(crate) fn draw_over_image(painter: &Painter, texture: &TextureHandle, img_rect: Rect) {
    let uv = Rect::from_min_max(Pos2::ZERO, pos2(1.0, 1.0));
    painter.image(texture.id(), img_rect, uv, Color32::WHITE);
}

/// A picture of one document's mask (by its serial).
struct Built {
    image_gen: u64,
    serial: u64,
    image: ColorImage,
}

/// The Outline view's picture: built for the shown mask when the view needs it.
pub(crate) struct OutlineView {
    shown: Option<(u64, u64, TextureHandle)>,
    building: Option<(u64, u64)>,
    built: Inbox<Built>,
}

impl OutlineView {
    pub fn new(wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        OutlineView {
            shown: None,
            building: None,
            built: Inbox::new(wake),
        }
    }

    /// The texture to draw for `doc` (building it when the mask changed), if ready.
    pub fn picture(
        &mut self,
        ctx: &egui::Context,
        doc: &Document,
        size: [usize; 2],
    ) -> Option<&TextureHandle> {
        let key = (doc.generation(), doc.mask_serial());
        while let Some(b) = self.built.try_recv() {
            if self.building == Some((b.image_gen, b.serial)) {
                self.building = None;
            }
            if (b.image_gen, b.serial) == key {
                let t = ctx.load_texture("outline", b.image, egui::TextureOptions::LINEAR);
                self.shown = Some((b.image_gen, b.serial, t));
            }
        }
        let mask = doc.mask()?;
        let current = self.shown.as_ref().is_some_and(|(g, s, _)| (*g, *s) == key);
        if !current && self.building.is_none() {
            self.building = Some(key);
            let mask = mask.clone();
            let started = self.built.spawn("outline", move || Built {
                image_gen: key.0,
                serial: key.1,
                image: outline_image(&mask, size, EDGE_LINE, Color32::TRANSPARENT),
            });
            if !started {
                self.building = None;
            }
        }
        // The previous outline stays until the new one is ready, for the same image.
        self.shown
            .as_ref()
            .filter(|(g, s, _)| *g == key.0 && doc.shows_serial(*s))
            .map(|(_, _, t)| t)
    }

    /// The serial of the mask whose outline is shown, for tests.
    pub fn shown_serial(&self) -> Option<u64> {
        self.shown.as_ref().map(|(_, s, _)| *s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outline_marks_the_inside_border_and_veils_the_rest() {
        let mut mask = AlphaMask::new(8, 8);
        for y in 2..6 {
            for x in 2..6 {
                mask.put_pixel(x, y, image::Luma([255]));
            }
        }
        let veil = Color32::from_white_alpha(10);
        let img = outline_image(&mask, [8, 8], EDGE_LINE, veil);
        assert_eq!(img.pixels[2 * 8 + 2], EDGE_LINE);
        assert_eq!(img.pixels[2 * 8 + 4], EDGE_LINE);
        assert_eq!(img.pixels[3 * 8 + 3], veil);
        assert_eq!(img.pixels[0], Color32::TRANSPARENT);
        assert_eq!(img.pixels[7 * 8 + 7], Color32::TRANSPARENT);
    }
}
