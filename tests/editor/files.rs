//! Files: opening (dropped, at start, typed, broken) and saving the cut-out.

use std::sync::{Arc, Mutex};

use aicut::app::dots::DotKind;
use egui::{Key, Modifiers, PointerButton};

use crate::support::*;

#[test]
fn save_writes_the_full_size_cutout_with_the_mask_as_alpha_and_never_over_the_original() {
    let dir = tempfile::tempdir().unwrap();
    // Larger than the (lowered) texture limit: shown downscaled, saved at full size.
    let path = write_scene(dir.path(), "big.png", 1400, 900);
    let out = dir.path().join("saved-cutout.png");
    let dialogs = Arc::new(TestDialogs {
        save_to: Mutex::new(Some(out.clone())),
    });
    let mut h = harness(1.0, options_with(dialogs.clone(), None));
    h.input_mut().max_texture_side = Some(1024);
    h.step();
    open(&mut h, &path);
    wait_ready(&mut h);
    let v = h.state().view().unwrap();
    assert!(v.zoom < 1.0, "fit shows the whole 1400x900 image");
    let p = pixel_centre(&h, 700, 450);
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    assert_eq!(h.state().dots(), &[dot(DotKind::Green, 700, 450)]);
    let p = pixel_centre(&h, 20, 20);
    click(&mut h, p, PointerButton::Secondary, Modifiers::NONE);
    wait_until(&mut h, "a mask for both dots", |a| {
        a.shown_mask().is_some_and(|(_, _, p)| p.red.len() == 1)
    });
    h.key_press_modifiers(Modifiers::COMMAND, Key::S);
    wait_until(&mut h, "the save", |a| a.last_saved().is_some());
    assert_eq!(h.state().last_saved(), Some(out.as_path()));
    let saved = image::open(&out).unwrap();
    assert_eq!(saved.color(), image::ColorType::Rgba8);
    let saved = saved.into_rgba8();
    assert_eq!(saved.dimensions(), (1400, 900));
    let (_, mask, _) = h.state().shown_mask().unwrap();
    assert_eq!(mask.dimensions(), (1400, 900));
    assert!(
        saved
            .pixels()
            .zip(mask.pixels())
            .all(|(s, m)| s.0[3] == m.0[0]),
        "alpha is the mask"
    );
    let selected = mask.pixels().filter(|m| m.0[0] >= 128).count();
    assert!(
        selected > 1000 && selected < 1400 * 900 / 2,
        "a real selection: {selected}"
    );
    assert!(h.state().messages().iter().any(|m| m.contains("Saved")));

    // Saving over the original is refused, and the original is untouched.
    let original = std::fs::read(&path).unwrap();
    *dialogs.save_to.lock().unwrap() = Some(path.clone());
    h.key_press_modifiers(Modifiers::COMMAND, Key::S);
    wait_until(&mut h, "the refusal", |a| {
        !a.is_saving()
            && a.messages()
                .iter()
                .any(|m| m.contains("refusing to overwrite"))
    });
    assert_eq!(std::fs::read(&path).unwrap(), original);
}

#[test]
fn without_a_native_dialog_ctrl_o_offers_a_path_box() {
    let mut h = harness(1.0, options(None, None));
    assert!(h.state().path_entry().is_none());
    h.key_press_modifiers(Modifiers::COMMAND, Key::O);
    wait_until(&mut h, "the path box", |a| a.path_entry().is_some());
    assert!(!h.state().path_entry().unwrap().save);
}

#[test]
fn a_broken_file_shows_an_error_and_the_app_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.png");
    std::fs::write(&broken, b"this is not a picture at all").unwrap();
    let mut h = harness(1.0, options(None, None));
    drop_file(&mut h, &broken);
    wait_until(&mut h, "the error message", |a| !a.is_loading());
    let messages = h.state().messages();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("broken.png") && m.contains("not an image")),
        "{messages:?}"
    );
    assert!(h.state().image().is_none());
    // Still alive: a good file opens afterwards.
    let good = write_scene(dir.path(), "good.png", 120, 90);
    open(&mut h, &good);
    assert_eq!(h.state().image().unwrap().width(), 120);
    assert_eq!(
        h.state().recent_files().len(),
        1,
        "only the good file is recent"
    );
}

#[test]
fn an_image_given_at_start_opens_and_v_switches_the_view() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_scene(dir.path(), "start.png", 160, 120);
    let mut opts = options(None, None);
    opts.image = Some(path.clone());
    let mut h = harness(1.0, opts);
    wait_until(&mut h, "the image to open", |a| a.image().is_some());
    assert_eq!(
        h.state().image().unwrap().path.as_deref(),
        Some(path.as_path())
    );
    let before = h.state().view_mode();
    h.key_press(Key::V);
    h.step();
    assert_ne!(h.state().view_mode(), before);
}

#[test]
fn every_broken_file_gives_a_clear_message_and_the_open_image_stays() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_scene(dir.path(), "good.png", 120, 90);
    let mut h = harness(1.0, options(None, None));
    open(&mut h, &good);
    for file in crate::common::broken::corpus() {
        let path = dir.path().join(file.name);
        std::fs::write(&path, &file.bytes).unwrap();
        drop_file(&mut h, &path);
        wait_until(&mut h, file.name, |a| !a.is_loading());
        let messages = h.state().messages();
        assert!(
            messages.iter().any(|m| {
                let m = m.to_lowercase();
                m.contains(&file.name.to_lowercase()) && m.contains(file.expect)
            }),
            "{} should say {:?}: {messages:?}",
            file.name,
            file.expect
        );
        let img = h.state().image().expect("the good image stays open");
        assert_eq!(img.path.as_deref(), Some(good.as_path()), "{}", file.name);
    }
}
