//! The loupe: while Z is held, a magnifier beside the pointer shows the image around it at
//! pixel level with the current edge of the selection and the dots, so a dot lands on
//! the right side of a thin strand. Its picture is a few hundred full-resolution pixels
//! copied when the pointer reaches another pixel: no real work for the UI thread.

use egui::{
    Color32, ColorImage, Painter, Pos2, Rect, Stroke, StrokeKind, TextureHandle, pos2, vec2,
};

use super::App;
use super::dots::DotKind;

/// Image pixels shown on each side of the centre one.
pub const RADIUS: u32 = 12;
/// The loupe's side in points.
const SIDE: f32 = 200.0;
/// Its distance from the pointer, so the pointer's own spot stays visible.
const OFFSET: f32 = 28.0;

const EDGE: Color32 = Color32::from_rgb(255, 214, 0);

/// The loupe's picture and the pixel it is centred on.
#[derive(Default)]
pub(crate) struct Loupe {
    texture: Option<TextureHandle>,
    /// The image (by document generation) and pixel the picture shows.
    shows: Option<(u64, [u32; 2])>,
    /// Whether it was drawn this frame.
    pub drawn: Option<[u32; 2]>,
}

/// Whether the loupe key is held (and no text field has the keyboard).
pub fn held(ctx: &egui::Context) -> bool {
    !ctx.egui_wants_keyboard_input()
        && ctx.input(|i| i.key_down(egui::Key::Z) && !i.modifiers.command && !i.modifiers.alt)
}

/// The pixels around `centre` as a picture, `2 * RADIUS + 1` square; outside the image
/// dark grey.
pub fn crop(pixels: &image::RgbaImage, centre: [u32; 2]) -> ColorImage {
    let side = (2 * RADIUS + 1) as usize;
    let mut out = Vec::with_capacity(side * side);
    for dy in 0..side as i64 {
        for dx in 0..side as i64 {
            let x = centre[0] as i64 + dx - RADIUS as i64;
            let y = centre[1] as i64 + dy - RADIUS as i64;
            let inside =
                x >= 0 && y >= 0 && x < pixels.width() as i64 && y < pixels.height() as i64;
            out.push(if inside {
                let p = pixels.get_pixel(x as u32, y as u32).0;
                Color32::from_rgb(p[0], p[1], p[2])
            } else {
                Color32::from_gray(40)
            });
        }
    }
    ColorImage::new([side, side], out)
}

/// The edge segments of `mask` within the loupe around `centre`, in loupe cells (0 to
/// `2 * RADIUS + 1`): between every two neighbouring pixels on different sides.
pub fn edge_segments(mask: &image::GrayImage, centre: [u32; 2]) -> Vec<[Pos2; 2]> {
    let side = 2 * RADIUS as i64 + 1;
    let at = |cx: i64, cy: i64| {
        let x = centre[0] as i64 + cx - RADIUS as i64;
        let y = centre[1] as i64 + cy - RADIUS as i64;
        let inside = x >= 0 && y >= 0 && x < mask.width() as i64 && y < mask.height() as i64;
        inside && mask.get_pixel(x as u32, y as u32).0[0] >= 128
    };
    let mut out = Vec::new();
    for cy in 0..side {
        for cx in 0..side {
            let here = at(cx, cy);
            let (x, y) = (cx as f32, cy as f32);
            if cx + 1 < side && at(cx + 1, cy) != here {
                out.push([pos2(x + 1.0, y), pos2(x + 1.0, y + 1.0)]);
            }
            if cy + 1 < side && at(cx, cy + 1) != here {
                out.push([pos2(x, y + 1.0), pos2(x + 1.0, y + 1.0)]);
            }
        }
    }
    out
}

/// Where the loupe goes: above and right of the pointer, flipped to stay in the canvas.
fn placement(pointer: Pos2, canvas: Rect) -> Rect {
    let mut min = pointer + vec2(OFFSET, -OFFSET - SIDE);
    if min.x + SIDE > canvas.max.x {
        min.x = pointer.x - OFFSET - SIDE;
    }
    if min.y < canvas.min.y {
        min.y = pointer.y + OFFSET;
    }
    Rect::from_min_size(min, vec2(SIDE, SIDE))
}

impl App {
    /// Draws the loupe at the pointer while Z is held over the image.
    pub(super) fn draw_loupe(
        &mut self,
        ctx: &egui::Context,
        painter: &Painter,
        hover: Option<Pos2>,
    ) {
        self.tools.loupe.drawn = None;
        let canvas = self.canvas.rect;
        let Some(open) = self.open.as_ref() else {
            return;
        };
        let Some((pointer, centre)) = hover
            .filter(|_| held(ctx))
            .and_then(|p| Some((p, open.view.pixel_at(p, open.doc.size())?)))
        else {
            return;
        };
        let loupe = &mut self.tools.loupe;
        let key = (open.doc.generation(), centre);
        if loupe.shows != Some(key) || loupe.texture.is_none() {
            let picture = crop(open.doc.image().pixels(), centre);
            match loupe.texture.as_mut() {
                Some(t) => t.set(picture, egui::TextureOptions::NEAREST),
                None => {
                    let t = ctx.load_texture("loupe", picture, egui::TextureOptions::NEAREST);
                    loupe.texture = Some(t);
                }
            }
            loupe.shows = Some(key);
        }
        let Some(texture) = loupe.texture.as_ref() else {
            return;
        };
        let r = placement(pointer, canvas);
        let cell = SIDE / (2 * RADIUS + 1) as f32;
        let to_screen = |p: Pos2| r.min + p.to_vec2() * cell;
        painter.rect_filled(r.expand(3.0), 4.0, Color32::BLACK);
        let uv = Rect::from_min_max(Pos2::ZERO, pos2(1.0, 1.0));
        painter.image(texture.id(), r, uv, Color32::WHITE);
        if let Some(mask) = open.doc.mask() {
            for [a, b] in edge_segments(mask, centre) {
                painter.line_segment([to_screen(a), to_screen(b)], Stroke::new(2.0, EDGE));
            }
        }
        for d in open.doc.dots() {
            let (dx, dy) = (d.x as i64 - centre[0] as i64, d.y as i64 - centre[1] as i64);
            if dx.abs() > RADIUS as i64 || dy.abs() > RADIUS as i64 {
                continue;
            }
            let c = to_screen(pos2(
                (dx + RADIUS as i64) as f32 + 0.5,
                (dy + RADIUS as i64) as f32 + 0.5,
            ));
            let fill = match d.kind {
                DotKind::Green => Color32::from_rgb(40, 200, 70),
                DotKind::Red => Color32::from_rgb(235, 50, 50),
            };
            painter.circle(c, cell * 0.35, fill, Stroke::new(1.0, Color32::WHITE));
        }
        let middle = Rect::from_min_size(
            to_screen(pos2(RADIUS as f32, RADIUS as f32)),
            vec2(cell, cell),
        );
        painter.rect_stroke(
            middle,
            0.0,
            Stroke::new(1.5, Color32::WHITE),
            StrokeKind::Outside,
        );
        painter.rect_stroke(
            r,
            4.0,
            Stroke::new(2.0, Color32::WHITE),
            StrokeKind::Outside,
        );
        self.tools.loupe.drawn = Some(centre);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crop_is_centred_and_dark_outside_the_image() {
        let mut img = image::RgbaImage::new(30, 30);
        img.put_pixel(0, 0, image::Rgba([255, 0, 0, 255]));
        let c = crop(&img, [0, 0]);
        let side = (2 * RADIUS + 1) as usize;
        assert_eq!(c.size, [side, side]);
        let mid = RADIUS as usize * side + RADIUS as usize;
        assert_eq!(c.pixels[mid], Color32::from_rgb(255, 0, 0));
        assert_eq!(c.pixels[0], Color32::from_gray(40));
    }

    #[test]
    fn the_edge_runs_between_inside_and_outside_pixels() {
        let mut mask = image::GrayImage::new(40, 40);
        for y in 0..40 {
            for x in 0..20 {
                mask.put_pixel(x, y, image::Luma([255]));
            }
        }
        // Centred on (20, 20): the edge lies between cells 11 and 12, top to bottom.
        let segs = edge_segments(&mask, [20, 20]);
        assert_eq!(segs.len(), (2 * RADIUS + 1) as usize);
        assert!(segs.iter().all(|[a, b]| a.x == 12.0 && b.x == 12.0));
    }
}
