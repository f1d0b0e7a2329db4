//! The save options (format, trim, mask) set in the toolbar's menu, remembered in the
//! settings, and what Save then writes.

use std::sync::{Arc, Mutex};

use aicut::imageio::{ExportFormat, trim_bounds};
use egui::{Key, Modifiers, PointerButton};
use egui_kittest::kittest::Queryable;

use crate::support::*;

#[test]
fn save_options_pick_trimmed_lossless_webp_and_are_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_scene(dir.path(), "photo.png", 320, 240);
    // Typed without an extension: the chosen format supplies it.
    let dialogs = Arc::new(TestDialogs {
        save_to: Mutex::new(Some(dir.path().join("result"))),
    });
    let mut h = harness(1.0, options_with(dialogs, None));
    open(&mut h, &path);
    wait_ready(&mut h);
    let p = pixel_centre(&h, 160, 120);
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    wait_until(&mut h, "a mask", |a| a.shown_mask().is_some());

    h.get_by_label("Save options").click();
    h.run_steps(2);
    h.get_by_label("WebP, lossless").click();
    h.run_steps(2);
    h.get_by_label("Trim to the subject").click();
    h.run_steps(2);
    let save = h.state().settings().save;
    assert_eq!(save.format, ExportFormat::WebP);
    assert!(save.trim && !save.mask_only);
    assert_eq!(save.margin, 16, "the default margin");
    h.key_press(Key::Escape);
    h.run_steps(2);

    h.key_press_modifiers(Modifiers::COMMAND, Key::S);
    wait_until(&mut h, "the save", |a| a.last_saved().is_some());
    let out = dir.path().join("result.webp");
    assert_eq!(h.state().last_saved(), Some(out.as_path()));
    let bytes = std::fs::read(&out).unwrap();
    let mut d = image_webp::WebPDecoder::new(std::io::Cursor::new(&bytes)).unwrap();
    let (_, mask, _) = h.state().shown_mask().unwrap();
    let (_, _, w, hgt) = trim_bounds(mask, 16).unwrap();
    assert_eq!(
        d.dimensions(),
        (w, hgt),
        "cropped to the subject plus 16 px"
    );
    assert!(w < 320 && hgt < 240, "really trimmed: {w}x{hgt}");
    assert!(d.has_alpha());
    let mut buf = vec![0; d.output_buffer_size().unwrap()];
    d.read_image(&mut buf).unwrap();
    assert!(buf.chunks_exact(4).any(|p| p[3] == 0) && buf.chunks_exact(4).any(|p| p[3] == 255));
}
