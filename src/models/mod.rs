//! Models as files with identities: the known SAM-family checkpoints ([`catalog`]), where
//! they live (`<data folder>/models/`, e.g. `~/.local/share/aicut/models/` on Linux, or
//! `$XDG_DATA_HOME/aicut/models/`), and downloading them verified ([`download`]). Used by
//! `aicut model`, the editor's Settings and `--model NAME` alike.
//!
//! Two environment variables change where files come from:
//! - `AICUT_MODEL_MIRROR=URL`: fetch every model from `URL/<file name>` instead of its
//!   official location. The pinned SHA-256 is still checked, so a mirror cannot change
//!   what gets installed.
//! - `AICUT_TEST_MODEL_SHA256=HEX` (debug builds only, for the tests that run the binary
//!   against a loopback server): replaces every pinned digest and drops the size check.
//!   Release builds ignore it, so no setting can make a release accept an unpinned file.
//!
//! The library calls ([`download::fetch`], [`ModelStore::new`]) take the digest and the
//! folder as arguments; in-process tests pass their own instead of touching the environment.

pub mod catalog;
pub mod download;
mod part;
mod progress;

use std::path::{Path, PathBuf};

pub use catalog::{CATALOG, ModelInfo};
pub use download::{CancelToken, FetchError, FetchRequest, Fetched, Progress, fetch};

/// Mirror for every model: `URL/<file name>` (the digest is still checked).
pub const MIRROR_ENV: &str = "AICUT_MODEL_MIRROR";
/// Debug builds only: the digest every model must have instead of its pinned one.
pub const TEST_DIGEST_ENV: &str = "AICUT_TEST_MODEL_SHA256";

/// Where a model stands on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallState {
    Missing,
    /// A download stopped part-way; this many bytes are kept and the next one resumes.
    Partial(u64),
    /// Verified and renamed into place (only verified files ever get the final name).
    Installed,
}

/// The models folder and the models that can be installed in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelStore {
    pub dir: PathBuf,
    pub models: Vec<ModelInfo>,
}

/// `<data folder>/models`: `$XDG_DATA_HOME/aicut/models` (default
/// `~/.local/share/aicut/models`) on Linux, the platform's equivalent elsewhere.
pub fn user_models_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("io.github", "aicut", "aicut")
        .map(|d| d.data_dir().join("models"))
}

impl ModelStore {
    pub fn new(dir: impl Into<PathBuf>, models: Vec<ModelInfo>) -> Self {
        ModelStore {
            dir: dir.into(),
            models,
        }
    }

    /// The user's models folder and the catalog, with [`MIRROR_ENV`] (and, in debug
    /// builds, [`TEST_DIGEST_ENV`]) applied.
    pub fn user() -> Result<ModelStore, String> {
        let dir = user_models_dir()
            .ok_or("no data folder for models: the home folder is not known (is HOME set?)")?;
        let mirror = std::env::var(MIRROR_ENV)
            .ok()
            .filter(|m| !m.trim().is_empty());
        let mut models: Vec<ModelInfo> = CATALOG.to_vec();
        for m in &mut models {
            if let Some(mirror) = &mirror {
                m.url = format!("{}/{}", mirror.trim().trim_end_matches('/'), m.file_name).into();
            }
            #[cfg(debug_assertions)]
            if let Ok(digest) = std::env::var(TEST_DIGEST_ENV) {
                m.sha256 = digest.trim().to_lowercase().into();
                m.size = None;
            }
        }
        Ok(ModelStore::new(dir, models))
    }

    pub fn find(&self, name: &str) -> Option<&ModelInfo> {
        self.models.iter().find(|m| m.name == name)
    }

    /// The model called `name`, or a sentence naming the known ones.
    pub fn get(&self, name: &str) -> Result<&ModelInfo, String> {
        self.find(name).ok_or_else(|| {
            let known: Vec<&str> = self.models.iter().map(|m| m.name.as_ref()).collect();
            format!(
                "there is no model called '{name}'; known models: {}",
                known.join(", ")
            )
        })
    }

    /// Where `model` is (or would be) installed.
    pub fn path(&self, model: &ModelInfo) -> PathBuf {
        self.dir.join(model.file_name.as_ref())
    }

    /// Whether `model` is installed (reads the folder: not for a UI thread).
    pub fn state(&self, model: &ModelInfo) -> InstallState {
        let path = self.path(model);
        if path.is_file() {
            return InstallState::Installed;
        }
        match std::fs::metadata(download::part_path(&path)) {
            Ok(m) if m.is_file() && m.len() > 0 => InstallState::Partial(m.len()),
            _ => InstallState::Missing,
        }
    }

    /// What to download for `model`, from `url` if given (a mirror) or its own location.
    pub fn request(&self, model: &ModelInfo, url: Option<&str>) -> Result<FetchRequest, String> {
        let sha256 = model.sha256_bytes().ok_or_else(|| {
            format!(
                "the digest pinned for {} is not 64 hex digits: {}",
                model.name, model.sha256
            )
        })?;
        let url = url.map(str::trim).unwrap_or(&model.url).to_string();
        Ok(FetchRequest {
            size: model.size,
            ..FetchRequest::new(url, self.path(model), sha256)
        })
    }

    /// A `--model` argument as a file: a known model's name becomes its installed file;
    /// anything else is taken as a path. (To use a file literally named like a model, write
    /// `./mobile-sam`.)
    pub fn resolve(&self, arg: &Path) -> Result<PathBuf, String> {
        let Some(model) = arg.to_str().and_then(|name| self.find(name.trim())) else {
            return Ok(arg.to_path_buf());
        };
        let path = self.path(model);
        if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "{name} is not installed: run aicut model fetch {name}",
                name = model.name
            ))
        }
    }
}

/// The `--model` argument of the SAM engine as a file: a catalog name (`mobile-sam`)
/// becomes the installed file in the user's models folder, or an error that says how to
/// fetch it; a path stays as it is.
pub fn resolve_model_arg(arg: &Path) -> Result<PathBuf, String> {
    let names_a_model = arg
        .to_str()
        .is_some_and(|s| catalog::find(s.trim()).is_some());
    if !names_a_model {
        return Ok(arg.to_path_buf());
    }
    ModelStore::user()?.resolve(arg)
}

/// "40.7 MB", "2.6 GB", "375 MB", "900 B": decimal units, short.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 999.95 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    let digits = if unit == 0 || v >= 99.95 { 0 } else { 1 };
    format!("{v:.digits$} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> ModelStore {
        ModelStore::new(dir, CATALOG.to_vec())
    }

    #[test]
    fn sizes_read_in_decimal_units() {
        assert_eq!(human_bytes(900), "900 B");
        assert_eq!(human_bytes(40_728_226), "40.7 MB");
        assert_eq!(human_bytes(375_042_383), "375 MB");
        assert_eq!(human_bytes(2_564_550_879), "2.6 GB");
        assert_eq!(human_bytes(12_345), "12 kB");
    }

    #[test]
    fn a_model_name_resolves_to_its_installed_file_and_a_path_stays_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let err = s.resolve(Path::new("mobile-sam")).unwrap_err();
        assert_eq!(
            err,
            "mobile-sam is not installed: run aicut model fetch mobile-sam"
        );
        std::fs::write(dir.path().join("mobile_sam.pt"), b"x").unwrap();
        assert_eq!(
            s.resolve(Path::new("mobile-sam")).unwrap(),
            dir.path().join("mobile_sam.pt")
        );
        let file = Path::new("/models/mine.safetensors");
        assert_eq!(s.resolve(file).unwrap(), file);
        assert_eq!(
            s.resolve(Path::new("./mobile-sam")).unwrap(),
            Path::new("./mobile-sam")
        );
    }

    #[test]
    fn a_part_file_shows_as_partial_until_the_final_file_exists() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let m = s.get("sam-vit-b").unwrap();
        assert_eq!(s.state(m), InstallState::Missing);
        std::fs::write(dir.path().join("sam_vit_b_01ec64.pth.part"), [0u8; 10]).unwrap();
        assert_eq!(s.state(m), InstallState::Partial(10));
        std::fs::write(s.path(m), b"x").unwrap();
        assert_eq!(s.state(m), InstallState::Installed);
    }

    #[test]
    fn an_unknown_name_lists_the_known_ones() {
        let s = store(Path::new("/nowhere"));
        let err = s.get("sam-vit-x").unwrap_err();
        assert!(
            err.contains("mobile-sam, sam-vit-b, sam-vit-l, sam-vit-h"),
            "{err}"
        );
    }

    #[test]
    fn a_mirror_url_keeps_the_pinned_digest_and_size() {
        let s = store(Path::new("/models"));
        let m = s.get("mobile-sam").unwrap();
        let req = s.request(m, Some("http://127.0.0.1:9/m.pt")).unwrap();
        assert_eq!(req.url, "http://127.0.0.1:9/m.pt");
        assert_eq!(Some(req.sha256), m.sha256_bytes());
        assert_eq!(req.size, Some(40_728_226));
        assert_eq!(req.dest, Path::new("/models/mobile_sam.pt"));
    }
}
