//! Batches: several files at once; PageDown/PageUp keep each image's dots; the dots go
//! to sidecar files on Save project; Save writes each cut-out into one folder.

use std::sync::Arc;

use aicut::app::dots::DotKind;
use egui::{Key, Modifiers, PointerButton};

use crate::support::*;

#[test]
fn page_down_and_up_move_through_the_batch_and_each_image_keeps_its_dots() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let paths = scenes(dir.path(), &["a.png", "b.png", "c.png"], 240, 180);
    let mut h = harness(1.0, options(Some(out.path().to_path_buf()), None));
    for p in &paths {
        h.input_mut()
            .dropped_files
            .push(Arc::new(Dropped(p.clone())));
    }
    h.step();
    wait_until(&mut h, "the batch's first image", |a| showing(a, &paths[0]));
    let (listed, index, done) = h.state().batch().unwrap();
    assert_eq!((listed, index, done), (paths.clone(), 0, 0));
    h.step();
    let p = pixel_centre(&h, 120, 90);
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);

    h.key_press(Key::PageDown);
    wait_until(&mut h, "the second image", |a| showing(a, &paths[1]));
    assert!(
        h.state().dots().is_empty(),
        "a new image starts without dots"
    );
    h.step();
    for (x, y, b) in [
        (100, 80, PointerButton::Primary),
        (20, 20, PointerButton::Secondary),
    ] {
        let p = pixel_centre(&h, x, y);
        click(&mut h, p, b, Modifiers::NONE);
    }
    let b_dots = h.state().dots().to_vec();
    assert_eq!(b_dots.len(), 2);

    h.key_press(Key::PageDown);
    wait_until(&mut h, "the third image", |a| showing(a, &paths[2]));
    h.key_press(Key::PageDown);
    h.step();
    assert_eq!(h.state().batch().unwrap().1, 2, "no image after the last");
    h.key_press(Key::PageUp);
    wait_until(&mut h, "the second image again", |a| showing(a, &paths[1]));
    assert_eq!(h.state().dots(), &b_dots[..]);
    h.key_press(Key::PageUp);
    wait_until(&mut h, "the first image again", |a| showing(a, &paths[0]));
    assert_eq!(h.state().dots(), &[dot(DotKind::Green, 120, 90)]);
    // The engine has its dots too: the result comes without a click.
    wait_until(&mut h, "the first image's result", |a| {
        a.shown_mask().is_some()
    });

    // Save project: the dots beside each image that has some.
    h.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::S);
    let sidecar = |i: usize| {
        dir.path()
            .join(format!("{}.aicut.json", ["a.png", "b.png", "c.png"][i]))
    };
    wait_until(&mut h, "the sidecars", |_| {
        sidecar(0).is_file() && sidecar(1).is_file()
    });
    assert!(!sidecar(2).exists(), "no dots, no sidecar");
    let text = std::fs::read_to_string(sidecar(1)).unwrap();
    assert!(
        text.contains("\"x\": 100") && text.contains("\"keep\": false"),
        "{text}"
    );

    // Save: into the chosen folder, named after the source; the status counts it.
    h.key_press_modifiers(Modifiers::COMMAND, Key::S);
    let saved = out.path().join("a-cutout.png");
    wait_until(&mut h, "the first cut-out", |a| {
        a.last_saved() == Some(saved.as_path())
    });
    assert!(saved.is_file());
    assert_eq!(h.state().batch().unwrap().2, 1, "one done");
}

#[test]
fn a_reopened_folder_brings_back_the_dots_of_its_sidecars() {
    let dir = tempfile::tempdir().unwrap();
    let [a, b] = <[_; 2]>::try_from(scenes(dir.path(), &["a.png", "b.png"], 240, 180)).unwrap();
    std::fs::write(
        dir.path().join("a.png.aicut.json"),
        r#"{"image":"a.png","dots":[{"keep":true,"x":120,"y":90},{"keep":false,"x":5,"y":6}]}"#,
    )
    .unwrap();
    let mut h = harness(1.0, options(None, None));
    for p in [&a, &b] {
        h.input_mut()
            .dropped_files
            .push(Arc::new(Dropped(p.clone())));
    }
    h.step();
    wait_until(&mut h, "the first image", |x| showing(x, &a));
    assert_eq!(
        h.state().dots(),
        &[dot(DotKind::Green, 120, 90), dot(DotKind::Red, 5, 6)]
    );
    wait_until(&mut h, "its result", |x| x.shown_mask().is_some());
}

/// The command line's paths as `aicut a.png b.png` (the desktop entry's `%F`) and
/// `aicut folder/` give them: a batch, with its status line.
#[test]
fn several_command_line_files_or_a_folder_open_as_a_batch() {
    use egui_kittest::kittest::Queryable;
    let dir = tempfile::tempdir().unwrap();
    let [a, b] = <[_; 2]>::try_from(scenes(dir.path(), &["a.png", "b.png"], 240, 180)).unwrap();
    let (image, batch) = aicut::app::start_paths(vec![a.clone(), b.clone()]);
    assert_eq!(image, None);
    let mut opts = options(None, None);
    (opts.image, opts.batch) = (image, batch);
    let mut h = harness(1.0, opts);
    wait_until(&mut h, "the first file", |x| showing(x, &a));
    assert_eq!(h.state().batch().unwrap().0, [a.clone(), b.clone()]);
    h.step();
    assert!(
        h.query_by_label_contains("Batch 1 of 2: 0 done, 2 to go")
            .is_some()
    );

    let (image, batch) = aicut::app::start_paths(vec![dir.path().to_path_buf()]);
    assert_eq!(image, None);
    let mut opts = options(None, None);
    (opts.image, opts.batch) = (image, batch);
    let mut h = harness(1.0, opts);
    wait_until(&mut h, "the folder's first image", |x| showing(x, &a));
    assert_eq!(h.state().batch().unwrap().0, [a.clone(), b]);

    // One file opens alone.
    let (image, batch) = aicut::app::start_paths(vec![a.clone()]);
    assert_eq!((image, batch.len()), (Some(a), 0));
}

/// A photo opened alone saves its dots to the same sidecar a batch uses, and gets them
/// back when it is opened again.
#[test]
fn a_single_photos_dots_go_to_its_sidecar_and_come_back_when_it_is_opened_again() {
    let (dir, path, mut h) = opened_scene(1.0, options(None, None), 240, 180);
    assert!(h.state().batch().is_none());
    for (x, y, b) in [
        (120, 90, PointerButton::Primary),
        (10, 12, PointerButton::Secondary),
    ] {
        let p = pixel_centre(&h, x, y);
        click(&mut h, p, b, Modifiers::NONE);
    }
    let placed = h.state().dots().to_vec();
    h.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::S);
    let sidecar = dir.path().join("scene.png.aicut.json");
    wait_until(&mut h, "the sidecar", |_| sidecar.is_file());
    let text = std::fs::read_to_string(&sidecar).unwrap();
    assert!(text.contains("\"image\": \"scene.png\""), "{text}");

    let mut h = harness(1.0, options(None, None));
    open(&mut h, &path);
    assert_eq!(h.state().dots(), &placed[..]);
    wait_until(&mut h, "its result", |x| x.shown_mask().is_some());
}
