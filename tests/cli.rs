//! `aicut cut` as a script would run it: the real binary, real files.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn aicut() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aicut"))
}

fn write_scene(dir: &Path) -> (std::path::PathBuf, image::GrayImage, (f64, f64)) {
    let (img, truth, centre) = blob_scene(240, 180);
    let path = dir.join("scene.png");
    img.save(&path).unwrap();
    (path, truth, centre)
}

#[test]
fn cut_writes_a_full_size_transparent_png_of_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let (input, truth, (cx, cy)) = write_scene(dir.path());
    let out = dir.path().join("out.png");
    let o = aicut()
        .args([
            "cut",
            input.to_str().unwrap(),
            "--green",
            &format!("{cx},{cy}"),
            "-o",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let png = image::open(&out).unwrap();
    assert_eq!(png.color(), image::ColorType::Rgba8);
    let rgba = png.to_rgba8();
    assert_eq!(rgba.dimensions(), (240, 180));
    let alpha =
        image::GrayImage::from_fn(240, 180, |x, y| image::Luma([rgba.get_pixel(x, y).0[3]]));
    let score = iou(&alpha, &truth);
    assert!(score > 0.9, "IoU {score:.3}");
    assert_eq!(rgba.get_pixel(0, 0).0[3], 0, "background is transparent");
}

fn cut_fails(args: &[&str], expect_in_stderr: &str) {
    let o = aicut().args(args).output().unwrap();
    assert!(!o.status.success(), "{args:?} should fail");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr
            .to_lowercase()
            .contains(&expect_in_stderr.to_lowercase()),
        "{args:?}: stderr was: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn cut_refuses_bad_input_with_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _, _) = write_scene(dir.path());
    let input = input.to_str().unwrap();
    let out = dir.path().join("o.png");
    let out = out.to_str().unwrap();
    let text = dir.path().join("notes.jpg");
    std::fs::write(&text, "hello").unwrap();

    cut_fails(
        &["cut", text.to_str().unwrap(), "--green", "1,1", "-o", out],
        "not an image",
    );
    cut_fails(
        &["cut", "/no/such/file.png", "--green", "1,1", "-o", out],
        "could not read",
    );
    cut_fails(&["cut", input, "--green", "240,10", "-o", out], "outside");
    cut_fails(
        &["cut", input, "--green", "5,5", "--red", "-1,3", "-o", out],
        "outside",
    );
    cut_fails(&["cut", input, "--red", "5,5", "-o", out], "--green");
    cut_fails(&["cut", input, "--green", "5;5", "-o", out], "x,y");
    cut_fails(
        &["cut", input, "--green", "5,5", "-o", "/no/such/dir/o.png"],
        "does not exist",
    );
    cut_fails(&["cut", input, "--green", "5,5", "-o", input], "overwrite");
    assert!(!Path::new(out).exists(), "no output is written on failure");
    assert!(image::open(input).is_ok(), "the source is untouched");
}

#[test]
fn cut_through_the_api_engine_matches_the_builtin_engine() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _, (cx, cy)) = write_scene(dir.path());
    let local = dir.path().join("local.png");
    let remote = dir.path().join("remote.png");
    let dots = ["--green", &format!("{cx},{cy}"), "--red", "3,3"].map(str::to_string);
    let o = aicut()
        .args([
            "cut",
            input.to_str().unwrap(),
            "-o",
            local.to_str().unwrap(),
        ])
        .args(&dots)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let server = ServeProcess::start(&[]);
    let o = aicut()
        .args([
            "cut",
            input.to_str().unwrap(),
            "-o",
            remote.to_str().unwrap(),
        ])
        .args(&dots)
        .args(["--engine", "api", "--api-url", &server.url])
        .env("AICUT_API_KEY", "any-token")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a = image::open(&local).unwrap().to_rgba8();
    let b = image::open(&remote).unwrap().to_rgba8();
    assert_eq!(a.dimensions(), b.dimensions());
    assert!(
        a == b,
        "the API engine's cut-out differs from the built-in one"
    );

    // Without a key the API engine refuses before any network call.
    let o = aicut()
        .args([
            "cut",
            input.to_str().unwrap(),
            "-o",
            remote.to_str().unwrap(),
            "--green",
            "5,5",
        ])
        .args(["--engine", "api", "--api-url", &server.url])
        .env_remove("AICUT_API_KEY")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("AICUT_API_KEY"));
}
