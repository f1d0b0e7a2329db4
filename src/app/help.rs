//! The help window (F1): every key and gesture of the editor, in one list.

use egui::RichText;

/// Every shortcut, for the help overlay.
pub const SHORTCUTS: &[(&str, &str)] = &[
    ("Left click", "add a green dot (keep)"),
    ("Right click", "add a red dot (drop)"),
    ("Drag a dot", "move it"),
    ("Alt/Ctrl + click a dot", "delete it"),
    (
        "Shift + drag",
        "a stroke of dots along the way (left green, right red); one undo step",
    ),
    (
        "Rest the pointer",
        "preview the selection a click there gives (Settings: on/off, delay)",
    ),
    (
        "Tab / Shift+Tab",
        "the engine's next / previous answer for the dots (or click its thumbnail)",
    ),
    (
        "Hold Z",
        "loupe: the pixels under the pointer, with the edge",
    ),
    ("Hold O", "see the original photo"),
    ("Hover a dot + Delete", "delete it"),
    ("Ctrl+Shift+Delete", "clear all dots"),
    ("Ctrl+Z", "undo"),
    ("Ctrl+Shift+Z or Ctrl+Y", "redo"),
    ("V", "switch view: selection / cut-out / outline / original"),
    ("Wheel or pinch", "zoom about the cursor"),
    ("+ / -", "zoom in / out"),
    ("F", "fit the image in the window"),
    ("1", "100 % (one image pixel per screen pixel)"),
    ("Middle drag, Space + drag", "pan"),
    ("Ctrl+O", "open an image (or drop one onto the window)"),
    (
        "Ctrl+Shift+O",
        "open a folder as a batch (or drop several files)",
    ),
    (
        "PageDown / PageUp",
        "next / previous image of the batch (each keeps its dots)",
    ),
    (
        "Ctrl+S",
        "save the cut-out (PNG or WebP, see Save options); in a batch into one folder",
    ),
    (
        "Ctrl+Shift+S",
        "save the project: the dots beside each photo (.aicut.json), read back on open",
    ),
    ("Esc", "cancel long work: opening, preparing, saving"),
    ("Ctrl+C", "copy the cut-out, with transparency"),
    ("Ctrl+V", "open the image on the clipboard"),
    ("F1 or ?", "show or hide this help"),
];

/// The shortcut list; returns whether it stays open.
pub(super) fn help_window(ctx: &egui::Context) -> bool {
    let mut open = true;
    egui::Window::new("Keyboard and mouse")
        .open(&mut open)
        .collapsible(false)
        .resizable(false)
        .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
        .show(ctx, |ui| {
            egui::Grid::new("shortcuts").striped(true).show(ui, |ui| {
                for (keys, what) in SHORTCUTS {
                    ui.label(RichText::new(*keys).strong());
                    ui.label(*what);
                    ui.end_row();
                }
            });
        });
    open
}
