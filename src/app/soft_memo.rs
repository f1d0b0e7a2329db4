//! The soft-edge pass of the latest mask, run once and shared. With soft edges the tint,
//! the cut-out view, a copy and a save all need the same matted alpha and colours; on a
//! 12 MP photo one pass takes seconds, so switching views and then saving must not run it
//! three more times. Background tasks ask; the first runs the pass, the others wait for it.

use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::engine::AlphaMask;
use crate::imageio::LoadedImage;
use crate::matting::{EdgeOptions, Edges, SoftCut};

/// One pass: for which image, mask and edges, and its result once it is done.
struct Entry {
    // Weak, so a closed image is freed; its allocation stays, so the address is not reused
    // by another image while the entry could match it.
    image: Weak<LoadedImage>,
    mask: Weak<AlphaMask>,
    edges: EdgeOptions,
    cut: Arc<OnceLock<Option<Arc<SoftCut>>>>,
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
    /// The soft-edge pass of `image` under `mask`, run here unless it ran (or is running)
    /// for the same three already; None for hard edges.
    pub fn get(
        &self,
        image: &Arc<LoadedImage>,
        mask: &Arc<AlphaMask>,
        edges: EdgeOptions,
    ) -> Option<Arc<SoftCut>> {
        if edges.edges == Edges::Hard {
            return None;
        }
        let cell = {
            let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
            match slot.as_ref() {
                Some(entry) if entry.is_for(image, mask, edges) => entry.cut.clone(),
                _ => {
                    let cut = Arc::new(OnceLock::new());
                    *slot = Some(Entry {
                        image: Arc::downgrade(image),
                        mask: Arc::downgrade(mask),
                        edges,
                        cut: cut.clone(),
                    });
                    cut
                }
            }
        };
        // Outside the lock: a pass for another mask is not held up by this one.
        cell.get_or_init(|| crate::matting::soft_cut(image.pixels(), mask, edges).map(Arc::new))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, RgbaImage};

    fn scene() -> (Arc<LoadedImage>, Arc<AlphaMask>) {
        let img = RgbaImage::from_fn(32, 32, |x, _| {
            if x < 16 {
                image::Rgba([200, 40, 40, 255])
            } else {
                image::Rgba([20, 20, 220, 255])
            }
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
    }
}
