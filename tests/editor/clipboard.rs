//! Copy (Ctrl+C) and Paste (Ctrl+V): through an in-memory clipboard that records what the
//! editor put there, and through the real system clipboard, which headless machines lack.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use aicut::app::clipboard::{ClipboardBackend, ClipboardOpener};
use egui::{Key, Modifiers, PointerButton};

use crate::support::*;

type Image = (usize, usize, Vec<u8>);

/// A clipboard in memory, shared with the test.
#[derive(Clone, Default)]
struct Memory(Arc<Mutex<Option<Image>>>);

impl ClipboardBackend for Memory {
    fn set_image(&mut self, width: usize, height: usize, rgba: Vec<u8>) -> Result<(), String> {
        *self.0.lock().unwrap() = Some((width, height, rgba));
        Ok(())
    }
    fn get_image(&mut self) -> Result<Image, String> {
        self.0.lock().unwrap().clone().ok_or("empty".into())
    }
    fn get_files(&mut self) -> Result<Vec<PathBuf>, String> {
        Err("none".into())
    }
    fn get_text(&mut self) -> Result<String, String> {
        Err("none".into())
    }
}

fn opener(memory: &Memory) -> ClipboardOpener {
    let memory = memory.clone();
    Arc::new(move || Ok(Box::new(memory.clone()) as Box<dyn ClipboardBackend>))
}

#[test]
fn copy_puts_the_cutout_with_transparency_and_paste_opens_an_image() {
    let memory = Memory::default();
    let mut opts = options(None, None);
    opts.clipboard = opener(&memory);
    let (_dir, _path, mut h) = opened_scene(1.0, opts, 200, 150);
    wait_ready(&mut h);
    h.key_press_modifiers(Modifiers::COMMAND, Key::C);
    wait_until(&mut h, "the refusal", |a| {
        a.messages()
            .iter()
            .any(|m| m.contains("Nothing is selected"))
    });
    let p = pixel_centre(&h, 100, 75);
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    wait_until(&mut h, "a mask", |a| a.shown_mask().is_some());
    h.key_press_modifiers(Modifiers::COMMAND, Key::C);
    wait_until(&mut h, "the copy", |a| {
        a.messages()
            .iter()
            .any(|m| m.contains("Copied the cut-out"))
    });
    let (w, hgt, rgba) = memory
        .0
        .lock()
        .unwrap()
        .clone()
        .expect("an image was copied");
    assert_eq!((w, hgt), (200, 150));
    let (_, mask, _) = h.state().shown_mask().unwrap();
    let alpha: Vec<u8> = rgba.chunks_exact(4).map(|p| p[3]).collect();
    assert_eq!(
        &alpha,
        mask.as_raw(),
        "the clipboard image's alpha is the selection"
    );
    assert!(alpha.contains(&0) && alpha.contains(&255));

    // Another picture on the clipboard; Ctrl+V opens it as a new image.
    let pasted: Vec<u8> = (0..64 * 48).flat_map(|i| [i as u8, 90, 200, 255]).collect();
    *memory.0.lock().unwrap() = Some((64, 48, pasted.clone()));
    h.key_press_modifiers(Modifiers::COMMAND, Key::V);
    wait_until(&mut h, "the pasted image", |a| {
        a.image().is_some_and(|i| i.width() == 64)
    });
    let img = h.state().image().unwrap().clone();
    assert_eq!(
        (img.width(), img.height(), img.name.as_str()),
        (64, 48, "pasted.png")
    );
    assert_eq!(img.pixels().as_raw(), &pasted);
    assert!(h.state().dots().is_empty(), "a new document");
    wait_ready(&mut h);
}

/// The real clipboard: where there is no display (CI, these tests), both shortcuts say
/// so in a message and the editor goes on.
#[test]
fn without_a_display_the_system_clipboard_fails_with_a_message() {
    let headless = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .all(|v| std::env::var_os(v).is_none_or(|s| s.is_empty()));
    let (_dir, _path, mut h) = opened_scene(1.0, options(None, None), 120, 90);
    wait_ready(&mut h);
    let p = pixel_centre(&h, 60, 45);
    click(&mut h, p, PointerButton::Primary, Modifiers::NONE);
    wait_until(&mut h, "a mask", |a| a.shown_mask().is_some());
    h.key_press_modifiers(Modifiers::COMMAND, Key::C);
    let expected = if headless {
        "clipboard is not available"
    } else {
        "Copied the cut-out"
    };
    wait_until(&mut h, "the copy's message", |a| {
        a.messages().iter().any(|m| m.contains(expected))
    });
    if headless {
        h.key_press_modifiers(Modifiers::COMMAND, Key::V);
        // The copy's message and now the paste's.
        wait_until(&mut h, "the paste's message", |a| {
            !a.is_loading()
                && a.messages()
                    .iter()
                    .filter(|m| m.contains("clipboard is not available"))
                    .count()
                    >= 2
        });
        assert_eq!(
            h.state().image().unwrap().width(),
            120,
            "the open image stays"
        );
    }
}
