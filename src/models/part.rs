//! The `.part` file a download collects in: locked against a second download of the same
//! file, hashed as it grows (including what an earlier, interrupted download left), and
//! renamed into place only when its SHA-256 is the expected one.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::download::{FetchError, io_err};

/// The `.part` file, locked against a second download, with the SHA-256 of what it holds.
pub(super) struct PartFile {
    path: PathBuf,
    file: tokio::fs::File,
    /// The bytes it holds.
    pub len: u64,
    hasher: Sha256,
}

impl PartFile {
    /// Opens (or creates) the `.part` and hashes what an earlier download left in it.
    pub async fn open(path: &Path) -> Result<PartFile, FetchError> {
        let p = path.to_path_buf();
        let opened = tokio::task::spawn_blocking(move || open_and_hash(&p))
            .await
            .map_err(|e| FetchError::Setup(format!("the download task failed: {e}")))??;
        let (file, len, hasher) = opened;
        Ok(PartFile {
            path: path.to_path_buf(),
            file: tokio::fs::File::from_std(file),
            len,
            hasher,
        })
    }

    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), FetchError> {
        self.file
            .write_all(bytes)
            .await
            .map_err(io_err("write", &self.path))?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    pub async fn flush(&mut self) -> Result<(), FetchError> {
        self.file.flush().await.map_err(io_err("write", &self.path))
    }

    /// Empties the file to download from the start.
    pub async fn truncate(&mut self) -> Result<(), FetchError> {
        self.flush().await?;
        self.file
            .set_len(0)
            .await
            .map_err(io_err("truncate", &self.path))?;
        self.file
            .seek(SeekFrom::Start(0))
            .await
            .map_err(io_err("rewind", &self.path))?;
        self.len = 0;
        self.hasher = Sha256::new();
        Ok(())
    }

    /// Ends a failed download: the bytes are kept for a later resume, unless there are
    /// none or they belong to another file (a wrong size).
    pub async fn fail(mut self, e: FetchError) -> FetchError {
        let flushed = self.flush().await;
        if self.len == 0 || matches!(e, FetchError::Size { .. }) {
            drop(self.file);
            let _ = tokio::fs::remove_file(&self.path).await;
        }
        match flushed {
            Err(flush) => flush,
            Ok(()) => e,
        }
    }

    /// Checks the digest; renames into place if it matches, deletes the bytes if not.
    pub async fn install(mut self, sha256: &[u8; 32], dest: &Path) -> Result<(), FetchError> {
        self.flush().await?;
        let actual: [u8; 32] = self.hasher.finalize().into();
        if &actual != sha256 {
            drop(self.file);
            let _ = tokio::fs::remove_file(&self.path).await;
            return Err(FetchError::Digest {
                expected: hex(sha256),
                actual: hex(&actual),
            });
        }
        self.file
            .sync_all()
            .await
            .map_err(io_err("write", &self.path))?;
        // Closed (and unlocked) before the rename, which some systems need.
        drop(self.file);
        tokio::fs::rename(&self.path, dest)
            .await
            .map_err(io_err("install the download as", dest))?;
        sync_dir(dest.parent());
        Ok(())
    }
}

/// Opens the `.part` without truncating it, takes an exclusive lock, and hashes its bytes.
fn open_and_hash(path: &Path) -> Result<(std::fs::File, u64, Sha256), FetchError> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_err("open", path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(FetchError::Busy(path.into())),
        Err(std::fs::TryLockError::Error(e)) => return Err(io_err("lock", path)(e)),
    }
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io_err("read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    file.seek(SeekFrom::Start(len))
        .map_err(io_err("read", path))?;
    Ok((file, len, hasher))
}

/// Makes a rename durable (best effort: not every system can sync a folder).
fn sync_dir(dir: Option<&Path>) {
    #[cfg(unix)]
    if let Some(dir) = dir
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Bytes as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
