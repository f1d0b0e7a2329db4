//! The embedding cache on real folders: exact round trips, what a key covers, LRU order,
//! damaged entries, the model-digest memo, unwritable folders and concurrent writers.

use std::fs::{self, File};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use aicut::engine::embedding_cache::{CacheKey, Cached, EmbeddingCache, sha256_file};
use image::RgbImage;

fn photo(seed: u8) -> RgbImage {
    RgbImage::from_fn(7, 5, |x, y| image::Rgb([x as u8 ^ seed, y as u8, seed]))
}

fn embedding(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 0.37 + seed).sin()).collect()
}

fn open(dir: &Path, cap: u64) -> EmbeddingCache {
    EmbeddingCache::open(dir.join("embeddings"), cap).unwrap()
}

/// Dates a file `secs` seconds back: recency without sleeping on the wall clock.
fn age(path: &Path, secs: u64) {
    let when = SystemTime::now() - Duration::from_secs(secs);
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

#[test]
fn an_embedding_comes_back_bit_exact_with_its_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = open(tmp.path(), 1 << 20);
    let mut data = embedding(24, 0.5);
    data[..6].copy_from_slice(&[
        -0.0,
        f32::INFINITY,
        f32::MIN_POSITIVE / 4.0,
        f32::MAX,
        -1e-30,
        0.0,
    ]);
    data[6] = f32::from_bits(0x7fc0_1234); // a NaN with a payload
    let key = CacheKey::new("model", &photo(1));
    assert_eq!(cache.get(&key), None);
    cache.put(&key, &[1, 2, 3, 4], &data).unwrap();
    let Cached { dims, data: back } = cache.get(&key).unwrap();
    assert_eq!(dims, [1, 2, 3, 4]);
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&back), bits(&data));
    let wrong_shape = cache.put(&key, &[5, 5], &data).unwrap_err();
    assert_eq!(wrong_shape.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn the_same_pixels_hit_while_other_pixels_size_or_model_miss() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = open(tmp.path(), 1 << 20);
    let key = CacheKey::new("model-a", &photo(1));
    cache.put(&key, &[3], &[1.0, 2.0, 3.0]).unwrap();
    // The same photo decoded from another file is the same key.
    assert!(
        cache
            .get(&CacheKey::new("model-a", &photo(1).clone()))
            .is_some()
    );
    assert!(cache.get(&CacheKey::new("model-a", &photo(2))).is_none());
    assert!(cache.get(&CacheKey::new("model-b", &photo(1))).is_none());
    // The same bytes in another shape are another image.
    let raw = photo(1).into_raw();
    let transposed = RgbImage::from_raw(5, 7, raw).unwrap();
    assert_ne!(CacheKey::new("model-a", &transposed), key);
    assert_eq!(key.as_str().len(), 64);
}

#[test]
fn eviction_removes_the_least_recently_used_and_a_read_counts_as_use() {
    let tmp = tempfile::tempdir().unwrap();
    let probe = open(&tmp.path().join("probe"), 1 << 20);
    let k = |i: u8| CacheKey::new("m", &photo(i));
    probe.put(&k(0), &[256], &embedding(256, 0.0)).unwrap();
    let entry = fs::metadata(probe.entry_path(&k(0))).unwrap().len();
    let cache = open(tmp.path(), entry * 5 / 2); // room for two entries
    let put = |i: u8| cache.put(&k(i), &[256], &embedding(256, i as f32)).unwrap();
    let present = |i: u8| cache.entry_path(&k(i)).exists();
    put(1);
    put(2);
    age(&cache.entry_path(&k(1)), 20);
    age(&cache.entry_path(&k(2)), 10);
    assert!(cache.get(&k(1)).is_some()); // 1 was written first but read last
    put(3);
    assert!(present(1) && !present(2) && present(3));
    age(&cache.entry_path(&k(1)), 30);
    age(&cache.entry_path(&k(3)), 5);
    put(4);
    assert!(!present(1) && present(3) && present(4));
}

#[test]
fn an_entry_larger_than_the_whole_cap_is_not_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = open(tmp.path(), 100);
    let key = CacheKey::new("m", &photo(1));
    cache.put(&key, &[64], &embedding(64, 0.0)).unwrap();
    assert!(!cache.entry_path(&key).exists());
}

/// Spoils an entry's bytes in one way.
type Damage = fn(&mut Vec<u8>);

#[test]
fn a_damaged_entry_is_a_miss_and_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = open(tmp.path(), 1 << 20);
    let key = CacheKey::new("m", &photo(1));
    let damages: [(&str, Damage); 6] = [
        ("truncated", |b| b.truncate(b.len() - 1)),
        ("extended", |b| b.extend_from_slice(&[0; 4])),
        ("flipped data bit", |b| *b.last_mut().unwrap() ^= 1),
        ("other version", |b| b[8] = b[8].wrapping_add(1)),
        ("not an entry", |b| *b = b"hello".to_vec()),
        ("empty", |b| b.clear()),
    ];
    for (what, damage) in damages {
        cache.put(&key, &[2, 8], &embedding(16, 1.0)).unwrap();
        let path = cache.entry_path(&key);
        let mut bytes = fs::read(&path).unwrap();
        damage(&mut bytes);
        fs::write(&path, bytes).unwrap();
        assert_eq!(cache.get(&key), None, "{what}");
        assert!(!path.exists(), "{what}: the bad file is removed");
    }
}

#[test]
fn model_digests_are_memoised_until_the_size_or_modification_time_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = open(tmp.path(), 1 << 20);
    let model = tmp.path().join("model.pt");
    fs::write(&model, b"abc").unwrap();
    let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert_eq!(cache.model_digest(&model).unwrap(), abc);
    let index = fs::read_to_string(cache.dir().join("model-digests.tsv")).unwrap();
    assert!(index.contains(abc), "{index}");
    // Same size, same time, other bytes: the memo answers without reading the file, also
    // for another cache opened on the same folder (another run of the app).
    let mtime = fs::metadata(&model).unwrap().modified().unwrap();
    fs::write(&model, b"xyz").unwrap();
    File::options()
        .write(true)
        .open(&model)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let again = open(tmp.path(), 1 << 20);
    assert_eq!(again.model_digest(&model).unwrap(), abc);
    // A new modification time or a new size is hashed again.
    age(&model, 60);
    let xyz = sha256_file(&model).unwrap();
    assert_ne!(xyz, abc);
    assert_eq!(cache.model_digest(&model).unwrap(), xyz);
    fs::write(&model, b"abcd").unwrap();
    age(&model, 60);
    assert_eq!(
        cache.model_digest(&model).unwrap(),
        sha256_file(&model).unwrap()
    );
    assert!(cache.model_digest(&tmp.path().join("missing.pt")).is_err());
}

fn running_as_root() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    return unsafe { libc::geteuid() } == 0;
    #[allow(unreachable_code)]
    false
}

#[test]
fn a_put_into_an_unwritable_folder_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = open(tmp.path(), 1 << 20);
    let key = CacheKey::new("m", &photo(1));
    // The folder replaced by a file: fails for every user, root included.
    fs::remove_dir(cache.dir()).unwrap();
    fs::write(cache.dir(), b"not a folder").unwrap();
    assert!(cache.put(&key, &[1], &[1.0]).is_err());
    assert_eq!(cache.get(&key), None);
    #[cfg(unix)]
    if !running_as_root() {
        use std::os::unix::fs::PermissionsExt;
        let cache = open(&tmp.path().join("ro"), 1 << 20);
        fs::set_permissions(cache.dir(), fs::Permissions::from_mode(0o555)).unwrap();
        let result = cache.put(&key, &[1], &[1.0]);
        fs::set_permissions(cache.dir(), fs::Permissions::from_mode(0o755)).unwrap();
        assert!(result.is_err());
    }
}

#[test]
fn concurrent_writers_of_one_key_leave_one_whole_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = open(tmp.path(), 1 << 30);
    let key = CacheKey::new("m", &photo(1));
    let versions: Vec<Vec<f32>> = (0..6).map(|i| embedding(64 * 1024, i as f32)).collect();
    std::thread::scope(|s| {
        for data in &versions {
            let (cache, key, versions) = (&cache, &key, &versions);
            s.spawn(move || {
                for _ in 0..4 {
                    cache.put(key, &[64, 1024], data).unwrap();
                    // A reader sees nothing or a whole entry, never a torn one.
                    if let Some(got) = cache.get(key) {
                        assert!(versions.contains(&got.data));
                    }
                }
            });
        }
    });
    assert!(versions.contains(&cache.get(&key).unwrap().data));
    let names: Vec<_> = fs::read_dir(cache.dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 1, "no temporary files left behind: {names:?}");
}

#[test]
fn opening_sweeps_temporary_files_left_by_a_crashed_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("embeddings");
    fs::create_dir_all(&dir).unwrap();
    let (stale, fresh) = (dir.join(".tmp-stale"), dir.join(".tmp-fresh"));
    fs::write(&stale, b"x").unwrap();
    fs::write(&fresh, b"x").unwrap();
    age(&stale, 2 * 3600);
    open(tmp.path(), 1 << 20);
    assert!(
        !stale.exists() && fresh.exists(),
        "a fresh one may belong to a live writer"
    );
}

#[test]
fn the_default_folder_is_embeddings_in_the_users_cache() {
    if let Some(dir) = EmbeddingCache::default_dir() {
        assert!(dir.ends_with("embeddings"), "{}", dir.display());
        assert!(dir.to_string_lossy().contains("aicut"), "{}", dir.display());
    }
}

/// Timings for the report: `cargo test --release --test embedding_cache -- --ignored
/// --nocapture`. Prints, asserts nothing about speed.
#[test]
#[ignore]
fn print_timings() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = open(tmp.path(), 1 << 30);
    let key = CacheKey::new("m", &photo(1));
    let data = embedding(256 * 64 * 64, 0.0);
    let t = Instant::now();
    cache.put(&key, &[1, 256, 64, 64], &data).unwrap();
    println!("put 4 MiB: {:?}", t.elapsed());
    for _ in 0..3 {
        let t = Instant::now();
        assert!(cache.get(&key).is_some());
        println!("get 4 MiB: {:?}", t.elapsed());
    }
    let big = RgbImage::from_fn(4000, 3000, |x, y| image::Rgb([x as u8, y as u8, 7]));
    let t = Instant::now();
    let _ = CacheKey::new("m", &big);
    println!("key of a 12 MP image: {:?}", t.elapsed());
    let model = tmp.path().join("model.bin");
    fs::write(
        &model,
        embedding(25_000_000, 0.0)
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let t = Instant::now();
    cache.model_digest(&model).unwrap();
    println!("model_digest 100 MB, first: {:?}", t.elapsed());
    let t = Instant::now();
    cache.model_digest(&model).unwrap();
    println!("model_digest 100 MB, memoised: {:?}", t.elapsed());
}
