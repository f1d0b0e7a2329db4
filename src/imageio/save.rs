//! Atomic saves that never write over the source.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a save failed, with the path, so the user knows what to change.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SaveError {
    #[error("refusing to overwrite the original image {0}; choose another name")]
    WouldOverwriteSource(String),
    #[error("could not save {path}: {reason}")]
    Write { path: String, reason: String },
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed, then
/// renamed over the target. A failure (full disk, no permission) leaves any existing file
/// untouched and no temporary behind. Refuses to write over any of `protected`.
pub fn save_atomic(path: &Path, bytes: &[u8], protected: &[&Path]) -> Result<(), SaveError> {
    save_atomic_with(path, protected, |file| file.write_all(bytes))
}

/// [`save_atomic`] with the writing done by `write` into the temporary file; a failing
/// writer (a full disk) is reported like any other write error.
pub fn save_atomic_with(
    path: &Path,
    protected: &[&Path],
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<(), SaveError> {
    let write_err = |reason: String| SaveError::Write {
        path: path.display().to_string(),
        reason,
    };
    if protected.iter().any(|p| same_file(p, path)) {
        return Err(SaveError::WouldOverwriteSource(path.display().to_string()));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if path.is_dir() {
        return Err(write_err("it is a folder".into()));
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".aicut-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| {
            write_err(format!(
                "cannot create a file in {}: {}",
                dir.display(),
                io_words(&e)
            ))
        })?;
    write(tmp.as_file_mut())
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| write_err(io_words(&e)))?;
    tmp.persist(path)
        .map_err(|e| write_err(io_words(&e.error)))?;
    Ok(())
}

/// An I/O error with what to do about the common ones.
fn io_words(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        StorageFull | QuotaExceeded => {
            format!("the disk is full ({e}); free some space or save elsewhere")
        }
        PermissionDenied | ReadOnlyFilesystem => {
            format!("no permission to write there ({e}); choose another folder")
        }
        _ => e.to_string(),
    }
}

/// Whether two paths name the same file (the second may not exist yet).
fn same_file(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| -> Option<PathBuf> {
        if let Ok(c) = p.canonicalize() {
            return Some(c);
        }
        let parent = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.canonicalize().ok()?,
            _ => std::env::current_dir().ok()?,
        };
        Some(parent.join(p.file_name()?))
    };
    match (canon(a), canon(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// `<stem>-cutout.png` beside the source, the name proposed for a save.
pub fn default_output_path(source: &Path) -> PathBuf {
    let stem = source
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    source.with_file_name(format!("{stem}-cutout.png"))
}
