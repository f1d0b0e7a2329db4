//! The AI Cut documentation's own Python example, unchanged but for API_BASE and API_KEY,
//! against the real `aicut serve` binary. Needs Python with `requests` and Pillow:
//! scripts/test.sh provides one and sets AICUT_TEST_PYTHON. Without it the test fails in
//! CI (CI=true) and elsewhere reports itself skipped.

mod common;

use std::io::Write;
use std::process::Command;

use common::*;

/// The Python to run the example with, or `None` (after saying so) where it may be skipped.
fn python() -> Option<String> {
    if let Some(python) = std::env::var("AICUT_TEST_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
    {
        return Some(python);
    }
    let why = "AICUT_TEST_PYTHON is not set (scripts/test.sh sets it to a Python with requests and Pillow)";
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI must run this test, but {why}");
    }
    // Straight to stderr, past the test harness's capture, so the skip shows in the run.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED the_seed_python_example_runs_against_aicut_serve: {why}"
    );
    None
}

#[test]
fn the_seed_python_example_runs_against_aicut_serve() {
    let Some(python) = python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A photo-like JPEG; the example's clicks (250,300), (270,320), (50,50) must be inside.
    let (img, _, _) = blob_scene(520, 400);
    img.save(dir.path().join("photo.jpg")).unwrap();

    let server = ServeProcess::start(&[]);
    let url = server.url.clone();

    let example = include_str!("fixtures/seed_example.py")
        .replace("\"https://api.backgroundcut.co\"", &format!("\"{url}\""))
        .replace("\"YOUR_API_KEY\"", "\"local-key\"");
    assert!(example.contains(&url), "API_BASE was replaced");
    let script = example
        + r#"
from io import BytesIO
from PIL import Image
for u in (result["output_url"], refined["output_url"]):
    im = Image.open(BytesIO(requests.get(u, timeout=30).content))
    print("PNG", im.size[0], im.size[1], im.mode)
"#;
    let out = Command::new(&python)
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .output()
        .unwrap();
    drop(server);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Session: "), "{stdout}");
    assert!(stdout.contains("Segmented: http://"), "{stdout}");
    assert!(stdout.contains("Refined: http://"), "{stdout}");
    assert_eq!(stdout.matches("PNG 520 400 RGBA").count(), 2, "{stdout}");
}
