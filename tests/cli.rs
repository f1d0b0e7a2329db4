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

    // The server hands back the engine's own edge, as the hosted service does; the client
    // makes the soft edge itself, the same way in both runs.
    let server = ServeProcess::start(&["--edges", "hard"]);
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

fn cut_ok(input: &Path, dot: (f64, f64), extra: &[&str]) {
    let o = aicut()
        .arg("cut")
        .arg(input)
        .args(["--green", &format!("{},{}", dot.0, dot.1)])
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The alpha of a saved cut-out, read with the `png` or `image-webp` crate directly.
fn saved_alpha(path: &Path) -> image::GrayImage {
    let bytes = std::fs::read(path).unwrap();
    let (w, h, rgba) = if path.extension().unwrap() == "webp" {
        let mut d = image_webp::WebPDecoder::new(std::io::Cursor::new(&bytes)).unwrap();
        assert!(d.has_alpha(), "a WebP cut-out keeps its transparency");
        let mut buf = vec![0; d.output_buffer_size().unwrap()];
        d.read_image(&mut buf).unwrap();
        let (w, h) = d.dimensions();
        (w, h, buf)
    } else {
        let img = image::load_from_memory(&bytes).unwrap().into_rgba8();
        (img.width(), img.height(), img.into_raw())
    };
    image::GrayImage::from_raw(w, h, rgba.chunks_exact(4).map(|p| p[3]).collect()).unwrap()
}

#[test]
fn cut_trims_writes_masks_and_lossless_webp() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _, centre) = write_scene(dir.path());
    let full = dir.path().join("full.png");
    cut_ok(&input, centre, &["-o", full.to_str().unwrap()]);
    let alpha = saved_alpha(&full);
    let (x, y, w, h) = aicut::imageio::trim_bounds(&alpha, 0).expect("something is selected");

    // Soft edges are the default: the same cut as --edges soft, not as --edges hard.
    let (soft, hard) = (dir.path().join("soft.png"), dir.path().join("hard.png"));
    cut_ok(
        &input,
        centre,
        &["--edges", "soft", "-o", soft.to_str().unwrap()],
    );
    cut_ok(
        &input,
        centre,
        &["--edges", "hard", "-o", hard.to_str().unwrap()],
    );
    assert_eq!(saved_alpha(&soft), alpha, "the default is soft");
    assert_ne!(
        saved_alpha(&hard),
        alpha,
        "hard edges differ from soft ones"
    );

    // A grey mask: exactly the cut-out's alpha.
    let mask = dir.path().join("mask.png");
    cut_ok(&input, centre, &["--mask", "-o", mask.to_str().unwrap()]);
    let grey = image::open(&mask).unwrap();
    assert_eq!(grey.color(), image::ColorType::L8);
    assert_eq!(grey.into_luma8(), alpha);

    // Trimmed WebP with a 5 px margin: the same alpha, cropped.
    let webp = dir.path().join("trim.webp");
    cut_ok(&input, centre, &["--trim=5", "-o", webp.to_str().unwrap()]);
    let trimmed = saved_alpha(&webp);
    let (x0, y0) = (x.saturating_sub(5), y.saturating_sub(5));
    let want = image::imageops::crop_imm(
        &alpha,
        x0,
        y0,
        (x + w + 5).min(240) - x0,
        (y + h + 5).min(180) - y0,
    )
    .to_image();
    assert_eq!(trimmed, want, "lossless, cropped to the subject plus 5 px");

    // --trim alone: no margin.
    let tight = dir.path().join("tight.png");
    cut_ok(&input, centre, &["--trim", "-o", tight.to_str().unwrap()]);
    assert_eq!(saved_alpha(&tight).dimensions(), (w, h));

    let out = dir.path().join("o.gif");
    let args = ["cut", input.to_str().unwrap(), "--green", "5,5", "-o"];
    cut_fails(
        &[&args[..], &[out.to_str().unwrap()]].concat(),
        ".png or .webp",
    );
}

/// A read-only folder, for real: mode 0555, and the child dropped to `nobody` when the
/// tests run as root (root writes anywhere). The message says so; nothing is written or lost.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn cut_into_a_read_only_folder_says_so_and_loses_nothing() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let (input, _, (cx, cy)) = write_scene(dir.path());
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    let existing = locked.join("out.png");
    std::fs::write(&existing, b"an earlier cut-out").unwrap();
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    mode(dir.path(), 0o755).unwrap();
    mode(&input, 0o644).unwrap();
    mode(&locked, 0o555).unwrap();
    let mut cmd = aicut();
    cmd.arg("cut")
        .arg(&input)
        .args(["--green", &format!("{cx},{cy}"), "-o"])
        .arg(&existing);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(65534).gid(65534);
    }
    let o = cmd.output().unwrap();
    mode(&locked, 0o755).unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(stderr.contains("no permission to write there"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one clear line: {stderr}");
    assert_eq!(std::fs::read(&existing).unwrap(), b"an earlier cut-out");
    assert_eq!(
        std::fs::read_dir(&locked).unwrap().count(),
        1,
        "no temporary left"
    );
}
