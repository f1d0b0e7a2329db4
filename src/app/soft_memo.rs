//! The soft-edge pass of the latest mask, run once and shared. With soft edges the tint,
//! the cut-out view, a copy and a save all need the same matted alpha (and all but the
//! tint the foreground colours too); on a 12 MP photo each half of the pass takes seconds,
//! so switching views and then saving must not run it again. Background tasks ask; the
//! first runs a half, the others wait for it.

use std::sync::{Arc, Mutex, OnceLock, Weak};

use image::GrayImage;

use crate::engine::AlphaMask;
use crate::imageio::LoadedImage;
use crate::matting::{EdgeOptions, Edges, SoftAlpha, SoftCut};

/// The matted alpha, at full precision (for the colours) and as the 8-bit picture.
struct Alpha {
    matte: SoftAlpha,
    image: Arc<GrayImage>,
}

/// The two halves of one pass, each run once when first asked for.
#[derive(Default)]
struct Halves {
    alpha: OnceLock<Option<Alpha>>,
    cut: OnceLock<Option<Arc<SoftCut>>>,
}

/// One pass: for which image, mask and edges, and its halves.
struct Entry {
    // Weak, so a closed image is freed; its allocation stays, so the address is not reused
    // by another image while the entry could match it.
    image: Weak<LoadedImage>,
    mask: Weak<AlphaMask>,
    edges: EdgeOptions,
    halves: Arc<Halves>,
}

impl Entry {
    fn is_for(&self, image: &Arc<LoadedImage>, mask: &Arc<AlphaMask>, edges: EdgeOptions) -> bool {
        self.edges == edges
            && self.image.ptr_eq(&Arc::downgrade(image))
            && self.mask.ptr_eq(&Arc::downgrade(mask))
    }
}

/// The shared pass of the most recent (image, mask, edges) asked for. Cheap to clone.
#[derive(Clone, Default)]
pub struct SoftMemo(Arc<Mutex<Option<Entry>>>);

impl SoftMemo {
    /// The pass's halves for these three: the entry's own when it is for them, else a new
    /// entry (which replaces it). None for hard edges.
    fn halves(
        &self,
        image: &Arc<LoadedImage>,
        mask: &Arc<AlphaMask>,
        edges: EdgeOptions,
    ) -> Option<Arc<Halves>> {
        if edges.edges == Edges::Hard {
            return None;
        }
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = slot.as_ref().filter(|e| e.is_for(image, mask, edges)) {
            return Some(entry.halves.clone());
        }
        let halves = Arc::new(Halves::default());
        *slot = Some(Entry {
            image: Arc::downgrade(image),
            mask: Arc::downgrade(mask),
            edges,
            halves: halves.clone(),
        });
        Some(halves)
    }

    /// The soft alpha of `image` under `mask` (the first half of the pass), run here
    /// unless it ran or is running for the same three; None for hard edges.
    pub fn alpha(
        &self,
        image: &Arc<LoadedImage>,
        mask: &Arc<AlphaMask>,
        edges: EdgeOptions,
    ) -> Option<Arc<GrayImage>> {
        let halves = self.halves(image, mask, edges)?;
        halves.first(image, mask, edges).map(|a| a.image.clone())
    }

    /// The whole pass (alpha and colours) of `image` under `mask`, each half run here
    /// unless it ran or is running for the same three; None for hard edges.
    pub fn get(
        &self,
        image: &Arc<LoadedImage>,
        mask: &Arc<AlphaMask>,
        edges: EdgeOptions,
    ) -> Option<Arc<SoftCut>> {
        let halves = self.halves(image, mask, edges)?;
        let alpha = halves.first(image, mask, edges);
        let cut = halves
            .cut
            .get_or_init(|| Some(Arc::new(alpha?.matte.cut(image.pixels()))));
        cut.clone()
    }
}

impl Halves {
    /// The first half, run here unless it ran or is running. The work runs outside the
    /// memo's lock: a pass for another mask is not held up by it.
    fn first(&self, image: &LoadedImage, mask: &AlphaMask, edges: EdgeOptions) -> Option<&Alpha> {
        let alpha = self.alpha.get_or_init(|| {
            let matte = crate::matting::soft_matte(image.pixels(), mask, edges)?;
            let image = Arc::new(matte.image());
            Some(Alpha { matte, image })
        });
        alpha.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, RgbaImage};

    fn scene() -> (Arc<LoadedImage>, Arc<AlphaMask>) {
        // Red to blue over a blurred edge at x = 16, as an out-of-focus outline is.
        let img = RgbaImage::from_fn(32, 32, |x, _| {
            let t = ((x as f32 - 13.0) / 6.0).clamp(0.0, 1.0);
            let mix = |a: f32, b: f32| (a + (b - a) * t) as u8;
            image::Rgba([mix(200.0, 20.0), mix(40.0, 20.0), mix(40.0, 220.0), 255])
        });
        let mask = GrayImage::from_fn(32, 32, |x, _| Luma([if x < 16 { 255 } else { 0 }]));
        (Arc::new(LoadedImage::from_pixels("t", img)), Arc::new(mask))
    }

    fn soft() -> EdgeOptions {
        EdgeOptions {
            edges: Edges::Soft,
            band: 4,
        }
    }

    #[test]
    fn one_pass_serves_every_asker_of_the_same_mask() {
        let (image, mask) = scene();
        let memo = SoftMemo::default();
        let first = memo
            .get(&image, &mask, soft())
            .expect("soft edges give a pass");
        let again = memo.clone().get(&image, &mask, soft()).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the pass ran twice");
        // The same pass as the matting module's own.
        let direct = crate::matting::soft_cut(image.pixels(), &mask, soft()).unwrap();
        assert_eq!(first.alpha, direct.alpha);
    }

    #[test]
    fn the_tint_s_alpha_is_the_first_half_of_the_later_cut() {
        let (image, mask) = scene();
        let memo = SoftMemo::default();
        let alpha = memo
            .alpha(&image, &mask, soft())
            .expect("soft edges give an alpha");
        let cut = memo.get(&image, &mask, soft()).unwrap();
        assert_eq!(*alpha, cut.alpha);
        assert!(
            (alpha.pixels()).any(|p| p.0[0] > 0 && p.0[0] < 255),
            "the scene's edge was not matted"
        );
        // Asking for the alpha again runs nothing new.
        assert!(Arc::ptr_eq(
            &alpha,
            &memo.alpha(&image, &mask, soft()).unwrap()
        ));
    }

    #[test]
    fn askers_at_the_same_time_wait_for_the_one_pass() {
        let (image, mask) = scene();
        let memo = SoftMemo::default();
        let ask = || {
            let (memo, image, mask) = (memo.clone(), image.clone(), mask.clone());
            std::thread::spawn(move || memo.get(&image, &mask, soft()).unwrap())
        };
        let (a, b) = (ask(), ask());
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert!(Arc::ptr_eq(&a, &b), "two passes ran for one mask");
    }

    #[test]
    fn a_new_mask_or_other_edges_run_a_new_pass_and_hard_edges_none() {
        let (image, mask) = scene();
        let memo = SoftMemo::default();
        let first = memo.get(&image, &mask, soft()).unwrap();
        // An equal mask in a new allocation is a new answer from the engine: a new pass.
        let same_pixels = Arc::new((*mask).clone());
        let second = memo.get(&image, &same_pixels, soft()).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        let wider = EdgeOptions { band: 8, ..soft() };
        let third = memo.get(&image, &same_pixels, wider).unwrap();
        assert!(!Arc::ptr_eq(&second, &third));
        assert!(memo.get(&image, &mask, EdgeOptions::HARD).is_none());
        assert!(memo.alpha(&image, &mask, EdgeOptions::HARD).is_none());
    }
}
