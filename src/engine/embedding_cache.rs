//! On-disk cache of image-encoder outputs, so reopening a photo skips the encoder.
//!
//! One file per embedding, named by a [`CacheKey`] (SHA-256 of model digest and pixels), so
//! the same photo opened from another file hits and another model misses. Entries are
//! written to a temporary file and renamed into place, so readers, other threads and other
//! processes only ever see whole entries. Recency is the file's modification time: a hit
//! refreshes it, and a put evicts the least recently used entries until the folder fits the
//! cap. The cache is an optimisation: every failure is a miss or an error the caller may
//! log and ignore.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use image::RgbImage;
use sha2::{Digest, Sha256};

/// 1 GiB: about 250 MobileSAM/SAM embeddings (256x64x64 f32 = 4 MiB each).
pub const DEFAULT_CAP_BYTES: u64 = 1 << 30;

/// Hashed first into every key; bump it when the encoder's input pipeline changes so that
/// entries computed the old way are never served.
const KEY_TAG: &[u8] = b"aicut embedding-cache key v1\0";
const MAGIC: &[u8; 8] = b"AICUTEMB";
const VERSION: u32 = 1;
/// Magic, version, rank, then a checksum of the data after the dims.
const FIXED_HEADER: usize = 8 + 4 + 4 + 8;
const MAX_RANK: usize = 8;
const ENTRY_EXT: &str = "emb";
const TMP_PREFIX: &str = ".tmp-";
/// Memo of model digests: `size \t mtime-ns \t sha256 \t canonical path` per line.
const DIGEST_INDEX: &str = "model-digests.tsv";
/// The index keeps the most recently hashed files only; older lines are dropped.
const DIGEST_INDEX_MAX: usize = 64;
/// Temporary files older than this were left by a crashed writer and are removed on open.
const STALE_TMP: Duration = Duration::from_secs(3600);

/// The name of one cache entry: a SHA-256 hex digest of model and image.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(String);

impl CacheKey {
    /// Hashes the model's digest, the image's size and its pixels (not its file name).
    pub fn new(model_digest: &str, image: &RgbImage) -> CacheKey {
        let mut h = Sha256::new();
        h.update(KEY_TAG);
        h.update((model_digest.len() as u64).to_le_bytes());
        h.update(model_digest.as_bytes());
        h.update(image.width().to_le_bytes());
        h.update(image.height().to_le_bytes());
        h.update(image.as_raw());
        CacheKey(format!("{:x}", h.finalize()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An embedding read back from the cache: its shape and its values in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct Cached {
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

/// A size-capped folder of embeddings. Cheap to share: it holds no open files.
#[derive(Debug, Clone)]
pub struct EmbeddingCache {
    dir: PathBuf,
    cap_bytes: u64,
}

impl EmbeddingCache {
    /// Creates `dir` if needed and sweeps temporary files left by crashed writers.
    pub fn open(dir: PathBuf, cap_bytes: u64) -> io::Result<Self> {
        fs::create_dir_all(&dir)?;
        let now = SystemTime::now();
        for entry in fs::read_dir(&dir)?.flatten() {
            if !entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                continue;
            }
            let modified = entry.metadata().and_then(|m| m.modified());
            let age = modified.map(|t| now.duration_since(t).unwrap_or_default());
            if age.is_ok_and(|age| age > STALE_TMP) {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(EmbeddingCache { dir, cap_bytes })
    }

    /// `embeddings` in the user's cache folder (on Linux `$XDG_CACHE_HOME/aicut/embeddings`,
    /// else `~/.cache/aicut/embeddings`); `None` when no home folder is known.
    pub fn default_dir() -> Option<PathBuf> {
        directories::ProjectDirs::from("io.github", "aicut", "aicut")
            .map(|d| d.cache_dir().join("embeddings"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds `key`'s entry, whether or not it exists.
    pub fn entry_path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.{ENTRY_EXT}", key.0))
    }

    /// The entry for `key`, or `None` when it is missing or unreadable. A truncated,
    /// corrupt or other-version entry is removed. A hit becomes the most recently used.
    pub fn get(&self, key: &CacheKey) -> Option<Cached> {
        let path = self.entry_path(key);
        let bytes = fs::read(&path).ok()?;
        let Some(cached) = decode_entry(&bytes) else {
            tracing::warn!(
                "embedding cache: removing unreadable entry {}",
                path.display()
            );
            let _ = fs::remove_file(&path);
            return None;
        };
        // A read-only cache still serves hits; only the recency is lost.
        let _ = File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now()));
        Some(cached)
    }

    /// Stores an embedding atomically, then evicts least recently used entries until the
    /// folder fits the cap. An entry larger than the whole cap is not stored. Errors (full
    /// disk, read-only folder) leave the cache as it was; the engine works on without it.
    pub fn put(&self, key: &CacheKey, dims: &[usize], data: &[f32]) -> io::Result<()> {
        let bytes = encode_entry(dims, data)?;
        if bytes.len() as u64 > self.cap_bytes {
            return Ok(());
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempfile_in(&self.dir)?;
        tmp.write_all(&bytes)?;
        // The clock's own precision, not the file system's coarser one, orders entries.
        tmp.as_file().set_modified(SystemTime::now())?;
        let path = self.entry_path(key);
        tmp.persist(&path).map_err(|e| e.error)?;
        self.evict(&path);
        Ok(())
    }

    /// Removes the oldest entries (by modification time) but `keep` until the total fits.
    fn evict(&self, keep: &Path) {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = dir
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == ENTRY_EXT))
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().unwrap_or(UNIX_EPOCH), m.len(), e.path()))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.cap_bytes {
                break;
            }
            // Another process may have removed it already; either way it no longer counts.
            if path != keep && fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }

    /// The SHA-256 hex of a model file, memoised in the cache folder by (canonical path,
    /// size, modification time): a second call for an unchanged file reads nothing of it.
    /// A file with a new size or modification time is hashed again. A file rewritten in
    /// place with the same size and modification time keeps its old digest (the memo trusts
    /// the file's metadata, as `make` does).
    pub fn model_digest(&self, path: &Path) -> io::Result<String> {
        let canonical = fs::canonicalize(path)?;
        let meta = fs::metadata(&canonical)?;
        let stamp = meta.modified()?.duration_since(UNIX_EPOCH).ok();
        // A path or time the index cannot hold is hashed every time.
        let memo = match (canonical.to_str(), stamp) {
            (Some(p), Some(t)) if !p.contains('\n') => Some(MemoLine {
                size: meta.len(),
                mtime_ns: t.as_nanos(),
                digest: String::new(),
                path: p.to_string(),
            }),
            _ => None,
        };
        let index_path = self.dir.join(DIGEST_INDEX);
        let mut index = read_index(&index_path);
        if let Some(m) = &memo
            && let Some(hit) = index.iter().find(|l| l.same_file(m))
        {
            return Ok(hit.digest.clone());
        }
        let digest = sha256_file(&canonical)?;
        if let Some(mut m) = memo {
            m.digest = digest.clone();
            index.retain(|l| l.path != m.path);
            index.push(m);
            let skip = index.len().saturating_sub(DIGEST_INDEX_MAX);
            if let Err(e) = self.write_index(&index_path, &index[skip..]) {
                tracing::warn!("embedding cache: cannot save model digest: {e}");
            }
        }
        Ok(digest)
    }

    /// Rewrites the index atomically: concurrent writers may lose a line, never garble one.
    fn write_index(&self, path: &Path, lines: &[MemoLine]) -> io::Result<()> {
        let text: String = lines.iter().map(MemoLine::to_line).collect();
        let mut tmp = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempfile_in(&self.dir)?;
        tmp.write_all(text.as_bytes())?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// One line of the digest index, oldest first in the file.
#[derive(Debug)]
struct MemoLine {
    size: u64,
    mtime_ns: u128,
    digest: String,
    path: String,
}

impl MemoLine {
    fn same_file(&self, other: &MemoLine) -> bool {
        (self.size, self.mtime_ns, &self.path) == (other.size, other.mtime_ns, &other.path)
    }

    fn to_line(&self) -> String {
        let MemoLine {
            size,
            mtime_ns,
            digest,
            path,
        } = self;
        format!("{size}\t{mtime_ns}\t{digest}\t{path}\n")
    }

    fn parse(line: &str) -> Option<MemoLine> {
        let mut f = line.splitn(4, '\t');
        let (size, mtime, digest, path) = (f.next()?, f.next()?, f.next()?, f.next()?);
        let hex = digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit());
        hex.then_some(())?;
        Some(MemoLine {
            size: size.parse().ok()?,
            mtime_ns: mtime.parse().ok()?,
            digest: digest.to_string(),
            path: path.to_string(),
        })
    }
}

/// A missing index is empty; garbled lines are skipped.
fn read_index(path: &Path) -> Vec<MemoLine> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines().filter_map(MemoLine::parse).collect()
}

/// The SHA-256 hex of a file, read in 1 MiB pieces so multi-gigabyte models fit anywhere.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut h = Sha256::new();
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(format!("{:x}", h.finalize()))
}

/// A 64-bit checksum of the data (FxHash-style): catches torn or flipped bytes at a small
/// fraction of the read's cost.
fn checksum(bytes: &[u8]) -> u64 {
    const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let mut words = bytes.chunks_exact(8);
    let mut h = bytes.len() as u64;
    for w in &mut words {
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w.try_into().unwrap())).wrapping_mul(K);
    }
    for &b in words.remainder() {
        h = (h.rotate_left(5) ^ b as u64).wrapping_mul(K);
    }
    h
}

/// Header (magic, version, rank, checksum, dims as u32) then the data as f32 little-endian.
fn encode_entry(dims: &[usize], data: &[f32]) -> io::Result<Vec<u8>> {
    let invalid = |m: &str| io::Error::new(io::ErrorKind::InvalidInput, m.to_string());
    if dims.len() > MAX_RANK || dims.iter().any(|&d| u32::try_from(d).is_err()) {
        return Err(invalid("embedding shape not storable"));
    }
    if dims.iter().product::<usize>() != data.len() {
        return Err(invalid("embedding shape does not match its data"));
    }
    let mut body = Vec::with_capacity(dims.len() * 4 + data.len() * 4);
    for &d in dims {
        body.extend_from_slice(&(d as u32).to_le_bytes());
    }
    for v in data {
        body.extend_from_slice(&v.to_le_bytes());
    }
    let mut out = Vec::with_capacity(FIXED_HEADER + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// The inverse of [`encode_entry`]; `None` for anything but a whole, current entry.
fn decode_entry(bytes: &[u8]) -> Option<Cached> {
    let (header, body) = bytes.split_at_checked(FIXED_HEADER)?;
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    if &header[..8] != MAGIC || u32_at(header, 8) != VERSION {
        return None;
    }
    let rank = u32_at(header, 12) as usize;
    let sum = u64::from_le_bytes(header[16..24].try_into().unwrap());
    if rank > MAX_RANK || checksum(body) != sum {
        return None;
    }
    let (dims_bytes, values) = body.split_at_checked(rank * 4)?;
    let dims: Vec<usize> = (0..rank)
        .map(|i| u32_at(dims_bytes, i * 4) as usize)
        .collect();
    let count = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
    if count.checked_mul(4)? != values.len() {
        return None;
    }
    let data = values
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    Some(Cached { dims, data })
}
