//! The view transform: where the image sits on screen and how large.
//!
//! One small pure type so that every conversion between screen points and image pixels
//! goes through the same two functions, and HiDPI, zoom and pan are tested in one place.
//! `zoom` counts physical screen pixels per image pixel (1.0 is "100 %"), so 100 % stays
//! true on a HiDPI screen where one point is several physical pixels.

use egui::{Pos2, Rect, Vec2, pos2, vec2};

/// The smallest and largest zoom (physical pixels per image pixel).
pub const MIN_ZOOM: f32 = 1.0 / 64.0;
pub const MAX_ZOOM: f32 = 64.0;
/// "Fit" enlarges small images, but not into a blur of huge pixels.
pub const FIT_MAX_ZOOM: f32 = 4.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    /// Physical screen pixels per image pixel.
    pub zoom: f32,
    /// The screen position (points) of the image's top-left corner.
    pub origin: Pos2,
    /// The screen's physical pixels per point (HiDPI scale).
    pub pixels_per_point: f32,
}

impl Default for View {
    fn default() -> Self {
        View {
            zoom: 1.0,
            origin: Pos2::ZERO,
            pixels_per_point: 1.0,
        }
    }
}

impl View {
    /// Screen points one image pixel spans.
    pub fn points_per_pixel(&self) -> f32 {
        self.zoom / self.pixels_per_point
    }

    /// Image coordinates (pixels, continuous: pixel (x, y) spans x..x+1) under a screen point.
    pub fn screen_to_image(&self, p: Pos2) -> Pos2 {
        let s = self.points_per_pixel();
        pos2((p.x - self.origin.x) / s, (p.y - self.origin.y) / s)
    }

    /// The screen point of image coordinates.
    pub fn image_to_screen(&self, p: Pos2) -> Pos2 {
        let s = self.points_per_pixel();
        pos2(self.origin.x + p.x * s, self.origin.y + p.y * s)
    }

    /// The image pixel under a screen point, or `None` outside an image of `size` pixels.
    pub fn pixel_at(&self, p: Pos2, size: [u32; 2]) -> Option<[u32; 2]> {
        let q = self.screen_to_image(p);
        let (x, y) = (q.x.floor(), q.y.floor());
        (x >= 0.0 && y >= 0.0 && x < size[0] as f32 && y < size[1] as f32)
            .then_some([x as u32, y as u32])
    }

    /// Where an image of `size` pixels lies on screen.
    pub fn image_rect(&self, size: [u32; 2]) -> Rect {
        Rect::from_min_max(
            self.origin,
            self.image_to_screen(pos2(size[0] as f32, size[1] as f32)),
        )
    }

    /// Multiplies the zoom by `factor`, keeping the image point under `anchor` in place.
    pub fn zoom_about(&mut self, anchor: Pos2, factor: f32) {
        let under = self.screen_to_image(anchor);
        self.zoom = (self.zoom * factor).clamp(MIN_ZOOM, MAX_ZOOM);
        let s = self.points_per_pixel();
        self.origin = pos2(anchor.x - under.x * s, anchor.y - under.y * s);
    }

    /// Moves the image by `delta` points.
    pub fn pan(&mut self, delta: Vec2) {
        self.origin += delta;
    }

    /// The whole image in `canvas`, centred; small images are enlarged up to 400 %.
    pub fn fit(canvas: Rect, size: [u32; 2], pixels_per_point: f32) -> View {
        let ppp = pixels_per_point.max(0.01);
        let avail = canvas.shrink(8.0).size().max(vec2(1.0, 1.0)) * ppp;
        let zoom = (avail.x / size[0].max(1) as f32)
            .min(avail.y / size[1].max(1) as f32)
            .clamp(MIN_ZOOM, FIT_MAX_ZOOM);
        Self::centred(canvas, size, ppp, zoom)
    }

    /// 100 %: one image pixel per physical screen pixel, centred in `canvas`.
    pub fn actual_size(canvas: Rect, size: [u32; 2], pixels_per_point: f32) -> View {
        Self::centred(canvas, size, pixels_per_point.max(0.01), 1.0)
    }

    fn centred(canvas: Rect, size: [u32; 2], ppp: f32, zoom: f32) -> View {
        let s = zoom / ppp;
        let extent = vec2(size[0] as f32 * s, size[1] as f32 * s);
        // Snap to whole physical pixels so that 100 % is pixel-exact.
        let origin = ((canvas.center() - extent / 2.0) * ppp).round() / ppp;
        View {
            zoom,
            origin,
            pixels_per_point: ppp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Pos2, b: Pos2) -> bool {
        (a - b).length() < 1e-3
    }

    #[test]
    fn round_trips_at_any_zoom_pan_and_scale() {
        for ppp in [1.0, 1.5, 2.0] {
            for zoom in [0.1, 0.5, 1.0, 3.0, 17.0] {
                let v = View {
                    zoom,
                    origin: pos2(13.25, -40.5),
                    pixels_per_point: ppp,
                };
                for p in [pos2(0.0, 0.0), pos2(10.5, 3.25), pos2(999.0, 1234.0)] {
                    assert!(close(v.screen_to_image(v.image_to_screen(p)), p));
                    assert!(close(v.image_to_screen(v.screen_to_image(p)), p));
                }
            }
        }
    }

    #[test]
    fn pixel_under_the_cursor() {
        let v = View {
            zoom: 2.0,
            origin: pos2(100.0, 50.0),
            pixels_per_point: 1.0,
        };
        assert_eq!(v.pixel_at(pos2(100.0, 50.0), [10, 10]), Some([0, 0]));
        assert_eq!(v.pixel_at(pos2(101.9, 51.9), [10, 10]), Some([0, 0]));
        assert_eq!(v.pixel_at(pos2(102.0, 55.0), [10, 10]), Some([1, 2]));
        assert_eq!(v.pixel_at(pos2(99.9, 60.0), [10, 10]), None);
        assert_eq!(v.pixel_at(pos2(120.0, 60.0), [10, 10]), None);
        // HiDPI: at 100 % on a 2x screen one image pixel is half a point.
        let hi = View {
            zoom: 1.0,
            origin: pos2(0.0, 0.0),
            pixels_per_point: 2.0,
        };
        assert_eq!(hi.pixel_at(pos2(5.25, 0.75), [100, 100]), Some([10, 1]));
    }

    #[test]
    fn zoom_keeps_the_anchor_in_place() {
        let mut v = View {
            zoom: 1.0,
            origin: pos2(20.0, 30.0),
            pixels_per_point: 1.0,
        };
        let anchor = pos2(200.0, 150.0);
        let before = v.screen_to_image(anchor);
        v.zoom_about(anchor, 3.0);
        assert_eq!(v.zoom, 3.0);
        assert!(close(v.screen_to_image(anchor), before));
        v.pan(vec2(7.0, -3.0));
        assert!(close(v.image_to_screen(before), anchor + vec2(7.0, -3.0)));
    }

    #[test]
    fn fit_and_actual_size_centre_the_image() {
        let canvas = Rect::from_min_size(pos2(0.0, 20.0), vec2(800.0, 600.0));
        let fit = View::fit(canvas, [4000, 3000], 1.0);
        let r = fit.image_rect([4000, 3000]);
        assert!(canvas.contains_rect(r));
        assert!((r.center() - canvas.center()).length() < 1.0);
        let one = View::actual_size(canvas, [100, 50], 2.0);
        assert_eq!(one.image_rect([100, 50]).size(), vec2(50.0, 25.0));
        // Small images are enlarged by "fit", within bounds.
        assert_eq!(View::fit(canvas, [10, 10], 1.0).zoom, FIT_MAX_ZOOM);
        let z = View::fit(canvas, [392, 100], 1.0).zoom;
        assert!((z - 2.0).abs() < 1e-4, "{z}");
    }
}
