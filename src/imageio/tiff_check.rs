//! A look at a TIFF's directories before the `tiff` crate reads them. Its 0.11 decoder
//! prints a debug line to stderr (a left-over `dbg!`) when a text field declares more
//! bytes than its buffer limit, which breaks `aicut cut`'s one-line errors. A text field
//! longer than the whole file cannot be valid, so such files are refused here first.
//! Found by the decode fuzz target; `tests/fixtures/fuzz/` keeps the input.

/// How many directories are looked at (the image's, its chain, EXIF/GPS/sub-IFDs).
const MAX_IFDS: usize = 32;

/// Tags whose value is the offset of another directory.
const SUB_IFD_TAGS: [u16; 3] = [330, 34665, 34853];

/// Err with a reason when a directory declares a text (ASCII) value longer than the file.
pub(super) fn check(bytes: &[u8]) -> Result<(), String> {
    let Some(tiff) = Tiff::open(bytes) else {
        return Ok(());
    };
    let mut pending: Vec<u64> = tiff.first_ifd().into_iter().collect();
    let mut seen = Vec::new();
    while let Some(at) = pending.pop() {
        if at == 0 || seen.contains(&at) || seen.len() >= MAX_IFDS {
            continue;
        }
        seen.push(at);
        if let Ok(at) = usize::try_from(at) {
            tiff.check_ifd(at, &mut pending)?;
        }
    }
    Ok(())
}

/// A classic or BigTIFF file in either byte order.
struct Tiff<'a> {
    bytes: &'a [u8],
    le: bool,
    big: bool,
}

impl<'a> Tiff<'a> {
    fn open(bytes: &'a [u8]) -> Option<Self> {
        let le = match bytes.get(..2)? {
            b"II" => true,
            b"MM" => false,
            _ => return None,
        };
        let mut tiff = Tiff {
            bytes,
            le,
            big: false,
        };
        tiff.big = match tiff.u16(2)? {
            42 => false,
            43 => true,
            _ => return None,
        };
        Some(tiff)
    }

    fn uint<const N: usize>(&self, at: usize) -> Option<u64> {
        let b = self.bytes.get(at..at.checked_add(N)?)?;
        let fold = |acc: u64, &x: &u8| (acc << 8) | u64::from(x);
        Some(if self.le {
            b.iter().rev().fold(0, fold)
        } else {
            b.iter().fold(0, fold)
        })
    }

    fn u16(&self, at: usize) -> Option<u16> {
        self.uint::<2>(at).map(|v| v as u16)
    }

    /// An offset or count: 4 bytes in classic TIFF, 8 in BigTIFF.
    fn offset(&self, at: usize) -> Option<u64> {
        if self.big {
            self.uint::<8>(at)
        } else {
            self.uint::<4>(at)
        }
    }

    /// BigTIFF's header has two more fields (offset size, padding) before it.
    fn first_ifd(&self) -> Option<u64> {
        self.offset(if self.big { 8 } else { 4 })
    }

    /// Checks one directory's entries; queues its sub-directories and the next one.
    fn check_ifd(&self, at: usize, pending: &mut Vec<u64>) -> Result<(), String> {
        let (count, entries, entry_len) = if self.big {
            (self.uint::<8>(at).unwrap_or(0), at + 8, 20)
        } else {
            (self.uint::<2>(at).unwrap_or(0), at + 2, 12)
        };
        let count = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len() / entry_len);
        let value_at = if self.big { 12 } else { 8 };
        for e in (0..count).map(|i| entries + i * entry_len) {
            let (Some(tag), Some(kind), Some(n)) =
                (self.u16(e), self.u16(e + 2), self.offset(e + 4))
            else {
                break;
            };
            if kind == 2 && n > self.bytes.len() as u64 {
                return Err(format!(
                    "a text field of its TIFF directory claims {n} bytes, more than the whole file"
                ));
            }
            if SUB_IFD_TAGS.contains(&tag) && n == 1 {
                pending.extend(self.offset(e + value_at));
            }
        }
        pending.extend(self.offset(entries + count * entry_len));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-entry directory: tag 270 (ImageDescription), ASCII, `count` bytes.
    fn with_text(le: bool, big: bool, count: u64) -> Vec<u8> {
        let mut v: Vec<u8> = if le { b"II".to_vec() } else { b"MM".to_vec() };
        let put = |v: &mut Vec<u8>, x: u64, n: usize| {
            let b = x.to_be_bytes();
            let b = &b[8 - n..];
            if le {
                v.extend(b.iter().rev());
            } else {
                v.extend(b);
            }
        };
        if big {
            put(&mut v, 43, 2);
            put(&mut v, 8, 2);
            put(&mut v, 0, 2);
            put(&mut v, 16, 8);
            put(&mut v, 1, 8);
            put(&mut v, 270, 2);
            put(&mut v, 2, 2);
            put(&mut v, count, 8);
            put(&mut v, 0, 8);
            put(&mut v, 0, 8);
        } else {
            put(&mut v, 42, 2);
            put(&mut v, 8, 4);
            put(&mut v, 1, 2);
            put(&mut v, 270, 2);
            put(&mut v, 2, 2);
            put(&mut v, count, 4);
            put(&mut v, 0, 4);
            put(&mut v, 0, 4);
        }
        v
    }

    #[test]
    fn text_longer_than_the_file_is_refused_in_every_flavour() {
        for (le, big) in [(true, false), (false, false), (true, true), (false, true)] {
            assert!(check(&with_text(le, big, 4)).is_ok(), "le={le} big={big}");
            assert!(
                check(&with_text(le, big, 1 << 30)).is_err(),
                "le={le} big={big}"
            );
        }
        assert!(check(b"not a tiff").is_ok());
    }
}
