//! The AI Cut documentation's own Python example, unchanged but for API_BASE and API_KEY,
//! against the real `aicut serve` binary. Needs Python with `requests`: scripts/test.sh
//! provides one and sets AICUT_TEST_PYTHON; without it the test says so and does nothing.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;

#[test]
fn the_seed_python_example_runs_against_aicut_serve() {
    let Ok(python) = std::env::var("AICUT_TEST_PYTHON") else {
        eprintln!("AICUT_TEST_PYTHON is not set: skipping (scripts/test.sh sets it)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A photo-like JPEG; the example's clicks (250,300), (270,320), (50,50) must be inside.
    let (img, _, _) = blob_scene(520, 400);
    img.save(dir.path().join("photo.jpg")).unwrap();

    let mut server = Command::new(env!("CARGO_BIN_EXE_aicut"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("AICUT_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first line on stderr names the URL it listens on.
    let mut stderr = BufReader::new(server.stderr.take().unwrap());
    let mut url = None;
    for _ in 0..50 {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(rest) = line.split("AI Cut API on ").nth(1) {
            url = rest.split_whitespace().next().map(str::to_string);
            break;
        }
    }
    let url = url.expect("aicut serve printed its URL");
    std::thread::spawn(move || for _ in stderr.lines() {}); // keep the pipe drained

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
    let _ = server.kill();
    let _ = server.wait();
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
