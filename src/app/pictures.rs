//! The pictures of an open image on the GPU: the display copy of the photo and the overlay
//! pictures (the tinted selection, the cut-out) of the shown mask. Overlays are built off
//! the UI thread only when the view needs them, one build per kind at a time; the newest
//! mask's picture replaces older ones. Textures upload on the UI thread before drawing.

use std::sync::Arc;

use egui::{ColorImage, TextureHandle, TextureId, TextureOptions};

use crate::engine::AlphaMask;
use crate::imageio::LoadedImage;
use crate::matting::EdgeOptions;

use super::document::Document;
use super::tasks::{LayerImage, LayerKind};

/// A texture made off the UI thread, uploaded when it is first drawn.
pub(crate) enum LazyTexture {
    Pending(ColorImage),
    Ready(TextureHandle),
}

impl LazyTexture {
    /// Uploads the picture if it is not yet on the GPU.
    fn upload(&mut self, ctx: &egui::Context, name: &str) {
        if let LazyTexture::Pending(img) = self {
            let img = std::mem::replace(
                img,
                ColorImage::new([1, 1], vec![egui::Color32::TRANSPARENT]),
            );
            *self = LazyTexture::Ready(ctx.load_texture(name, img, texture_options()));
        }
    }

    /// The texture, once uploaded.
    pub fn id(&self) -> Option<TextureId> {
        match self {
            LazyTexture::Ready(t) => Some(t.id()),
            LazyTexture::Pending(_) => None,
        }
    }

    fn is_uploaded(&self) -> bool {
        matches!(self, LazyTexture::Ready(_))
    }
}

/// Crisp pixels when zoomed in, smooth when zoomed out.
fn texture_options() -> TextureOptions {
    TextureOptions {
        magnification: egui::TextureFilter::Nearest,
        minification: egui::TextureFilter::Linear,
        ..TextureOptions::LINEAR
    }
}

/// An overlay picture (the tint or the cut-out) for one shown mask.
pub(crate) struct Layer {
    /// Which accepted mask it shows (see [`Document::mask_serial`]).
    pub serial: u64,
    pub request_number: u64,
    /// The edges it was built with: a change of the Edges setting rebuilds it.
    pub edges: EdgeOptions,
    pub texture: LazyTexture,
}

/// Everything a background task needs to build one overlay picture.
pub struct LayerJob {
    pub kind: LayerKind,
    pub image_gen: u64,
    pub serial: u64,
    pub request_number: u64,
    pub image: Arc<LoadedImage>,
    pub mask: Arc<AlphaMask>,
    pub display_size: [usize; 2],
    /// Soft edges are matted in the build (off the UI thread), so the view shows them.
    pub edges: EdgeOptions,
}

/// What the canvas draws under the dots, decided once so that uploading and drawing agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backdrop {
    /// The cut-out picture over a checkerboard.
    Cutout,
    /// The photo, with the tinted selection over it when `tint`.
    Photo { tint: bool },
}

/// The photo's display copy and the overlay pictures of one document.
pub(crate) struct Pictures {
    pub photo: LazyTexture,
    /// The display copy's size (the photo, downscaled to the GPU's texture limit).
    display_size: [usize; 2],
    pub tint: Option<Layer>,
    pub cutout: Option<Layer>,
    /// The serial of the mask a build of that kind is running for.
    building_tint: Option<u64>,
    building_cutout: Option<u64>,
    /// The edges the view shows (the Edges setting).
    edges: EdgeOptions,
}

impl Pictures {
    pub fn new(display: ColorImage) -> Self {
        Pictures {
            display_size: display.size,
            photo: LazyTexture::Pending(display),
            tint: None,
            cutout: None,
            building_tint: None,
            building_cutout: None,
            edges: EdgeOptions::HARD,
        }
    }

    /// The display copy's size, which overlay pictures share.
    pub fn display_size(&self) -> [usize; 2] {
        self.display_size
    }

    /// Sets the edges pictures are built with; pictures of other edges stay shown until
    /// their rebuild arrives.
    pub fn set_edges(&mut self, edges: EdgeOptions) {
        self.edges = edges;
    }

    pub fn layer(&self, kind: LayerKind) -> Option<&Layer> {
        match kind {
            LayerKind::Tint => self.tint.as_ref(),
            LayerKind::Cutout => self.cutout.as_ref(),
        }
    }

    fn slot(&mut self, kind: LayerKind) -> &mut Option<Layer> {
        match kind {
            LayerKind::Tint => &mut self.tint,
            LayerKind::Cutout => &mut self.cutout,
        }
    }

    fn building(&mut self, kind: LayerKind) -> &mut Option<u64> {
        match kind {
            LayerKind::Tint => &mut self.building_tint,
            LayerKind::Cutout => &mut self.building_cutout,
        }
    }

    /// Drops the overlay pictures the document no longer shows (its dots were cleared).
    pub fn forget_stale(&mut self, doc: &Document) {
        for kind in [LayerKind::Tint, LayerKind::Cutout] {
            let slot = self.slot(kind);
            if slot.as_ref().is_some_and(|l| !doc.shows_serial(l.serial)) {
                *slot = None;
            }
        }
    }

    /// The picture to build next for the view that needs `needed`, if the shown mask is
    /// newer than the one it has and no build of that kind runs (a newer mask that arrives
    /// meanwhile is built next). Frees pictures the view does not draw unless they are
    /// uploaded and current, so switching back to them is instant.
    pub fn next_job(&mut self, needed: Option<LayerKind>, doc: &Document) -> Option<LayerJob> {
        let edges = self.edges;
        for kind in [LayerKind::Tint, LayerKind::Cutout] {
            let slot = self.slot(kind);
            let keep = slot.as_ref().is_some_and(|l| {
                l.serial == doc.mask_serial() && l.edges == edges && l.texture.is_uploaded()
            });
            if Some(kind) != needed && !keep {
                *slot = None;
            }
        }
        let kind = needed?;
        let mask = doc.mask()?;
        let have = self
            .layer(kind)
            .filter(|l| l.edges == edges)
            .map_or(0, |l| l.serial);
        if have >= doc.mask_serial() || self.building(kind).is_some() {
            return None;
        }
        *self.building(kind) = Some(doc.mask_serial());
        Some(LayerJob {
            kind,
            image_gen: doc.generation(),
            serial: doc.mask_serial(),
            request_number: doc.shown_request(),
            image: doc.image().clone(),
            mask: mask.clone(),
            display_size: self.display_size,
            edges,
        })
    }

    /// Takes in a finished picture if it is for this document, newer than the one it
    /// would replace, of the view still shown (`wanted`), and of a mask still shown.
    /// Otherwise the picture is dropped here. Returns whether it was kept.
    pub fn receive(&mut self, l: LayerImage, wanted: Option<LayerKind>, doc: &Document) -> bool {
        if l.image_gen != doc.generation() {
            return false;
        }
        let building = self.building(l.kind);
        if *building == Some(l.serial) {
            *building = None;
        }
        let edges = self.edges;
        let newer = self
            .layer(l.kind)
            .is_none_or(|c| l.serial > c.serial || c.edges != edges);
        if !(newer && l.edges == edges && wanted == Some(l.kind) && doc.shows_serial(l.serial)) {
            return false;
        }
        // Replaces (and frees) the older picture, uploaded or not.
        *self.slot(l.kind) = Some(Layer {
            serial: l.serial,
            request_number: l.request_number,
            edges: l.edges,
            texture: LazyTexture::Pending(l.image),
        });
        true
    }

    /// What to draw under the dots in the view that draws `layer`: until the first cut-out
    /// picture is built, the photo is shown.
    pub fn backdrop(&self, layer: Option<LayerKind>) -> Backdrop {
        match layer {
            Some(LayerKind::Cutout) if self.cutout.is_some() => Backdrop::Cutout,
            Some(LayerKind::Tint) => Backdrop::Photo {
                tint: self.tint.is_some(),
            },
            _ => Backdrop::Photo { tint: false },
        }
    }

    /// Uploads the textures `backdrop` draws (and only those).
    pub fn upload(&mut self, ctx: &egui::Context, backdrop: Backdrop) {
        match backdrop {
            Backdrop::Cutout => {
                if let Some(l) = self.cutout.as_mut() {
                    l.texture.upload(ctx, "cutout");
                }
            }
            Backdrop::Photo { tint } => {
                self.photo.upload(ctx, "photo");
                if let Some(l) = self.tint.as_mut().filter(|_| tint) {
                    l.texture.upload(ctx, "selection");
                }
            }
        }
    }
}

/// A 2x2 checkerboard that repeats, for the cut-out view's transparent parts.
pub(crate) fn checker_texture(ctx: &egui::Context) -> TextureHandle {
    let (a, b) = (egui::Color32::from_gray(200), egui::Color32::from_gray(150));
    let img = ColorImage::new([2, 2], vec![a, b, b, a]);
    ctx.load_texture(
        "checker",
        img,
        TextureOptions {
            magnification: egui::TextureFilter::Nearest,
            minification: egui::TextureFilter::Nearest,
            wrap_mode: egui::TextureWrapMode::Repeat,
            mipmap_mode: None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::document::DotEdit;
    use crate::app::dots::{DotKind, PlacedDot};

    fn document_with_mask() -> Document {
        let image = LoadedImage::from_pixels("t", image::RgbaImage::new(8, 6));
        let mut doc = Document::new(7, Arc::new(image));
        doc.edit(DotEdit::Add(PlacedDot {
            kind: DotKind::Green,
            x: 1,
            y: 1,
        }));
        assert!(doc.accept_mask(1, Arc::new(AlphaMask::new(8, 6)), doc.prompt()));
        doc
    }

    fn finished(job: &LayerJob) -> LayerImage {
        LayerImage {
            kind: job.kind,
            image_gen: job.image_gen,
            serial: job.serial,
            request_number: job.request_number,
            edges: job.edges,
            image: ColorImage::filled(job.display_size, egui::Color32::WHITE),
        }
    }

    fn pictures() -> Pictures {
        Pictures::new(ColorImage::filled([4, 3], egui::Color32::BLACK))
    }

    #[test]
    fn only_the_picture_the_view_needs_is_built_once_per_mask() {
        let doc = document_with_mask();
        let mut p = pictures();
        assert!(
            p.next_job(None, &doc).is_none(),
            "the original view needs none"
        );
        let job = p
            .next_job(Some(LayerKind::Tint), &doc)
            .expect("a tint build");
        assert_eq!(
            (job.kind, job.serial, job.display_size),
            (LayerKind::Tint, 1, [4, 3])
        );
        assert!(
            p.next_job(Some(LayerKind::Tint), &doc).is_none(),
            "one at a time"
        );
        assert!(p.receive(finished(&job), Some(LayerKind::Tint), &doc));
        assert!(
            p.next_job(Some(LayerKind::Tint), &doc).is_none(),
            "up to date"
        );
        assert_eq!(
            p.backdrop(Some(LayerKind::Tint)),
            Backdrop::Photo { tint: true }
        );
    }

    #[test]
    fn a_picture_for_another_view_or_document_or_a_cleared_mask_is_dropped() {
        let mut doc = document_with_mask();
        let mut p = pictures();
        let job = p.next_job(Some(LayerKind::Cutout), &doc).unwrap();
        assert!(
            !p.receive(finished(&job), Some(LayerKind::Tint), &doc),
            "view switched"
        );
        assert_eq!(
            p.backdrop(Some(LayerKind::Cutout)),
            Backdrop::Photo { tint: false }
        );

        let job = p.next_job(Some(LayerKind::Cutout), &doc).unwrap();
        let mut other = finished(&job);
        other.image_gen += 1;
        assert!(
            !p.receive(other, Some(LayerKind::Cutout), &doc),
            "another image"
        );

        let mut p = pictures();
        let job = p.next_job(Some(LayerKind::Cutout), &doc).unwrap();
        doc.edit(DotEdit::Clear);
        assert!(
            !p.receive(finished(&job), Some(LayerKind::Cutout), &doc),
            "cleared"
        );
        assert!(p.cutout.is_none());
    }

    #[test]
    fn changing_the_edges_rebuilds_the_picture_and_drops_builds_of_the_old_edges() {
        let doc = document_with_mask();
        let mut p = pictures();
        let hard = p.next_job(Some(LayerKind::Tint), &doc).unwrap();
        assert_eq!(hard.edges, EdgeOptions::HARD);
        assert!(p.receive(finished(&hard), Some(LayerKind::Tint), &doc));
        let soft = EdgeOptions {
            edges: crate::matting::Edges::Soft,
            band: 6,
        };
        p.set_edges(soft);
        let job = p
            .next_job(Some(LayerKind::Tint), &doc)
            .expect("the same mask is rebuilt with soft edges");
        assert_eq!((job.edges, job.serial), (soft, 1));
        assert!(p.tint.is_some(), "the hard picture stays shown meanwhile");
        assert!(
            !p.receive(finished(&hard), Some(LayerKind::Tint), &doc),
            "a late picture of the old edges"
        );
        assert!(p.receive(finished(&job), Some(LayerKind::Tint), &doc));
        assert_eq!(p.tint.as_ref().map(|l| l.edges), Some(soft));
        assert!(p.next_job(Some(LayerKind::Tint), &doc).is_none());
    }

    #[test]
    fn clearing_the_dots_forgets_the_shown_pictures() {
        let mut doc = document_with_mask();
        let mut p = pictures();
        let job = p.next_job(Some(LayerKind::Tint), &doc).unwrap();
        assert!(p.receive(finished(&job), Some(LayerKind::Tint), &doc));
        doc.edit(DotEdit::Clear);
        p.forget_stale(&doc);
        assert!(p.tint.is_none());
    }
}
