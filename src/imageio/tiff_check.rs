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
    let le = match bytes.get(..2) {
        Some(b"II") => true,
        Some(b"MM") => false,
        _ => return Ok(()),
    };
    let u16_at = |at: usize| {
        bytes.get(at..at + 2).map(|b| {
            if le {
                u16::from_le_bytes([b[0], b[1]])
            } else {
                u16::from_be_bytes([b[0], b[1]])
            }
        })
    };
    let u32_at = |at: usize| {
        bytes.get(at..at + 4).map(|b| {
            let b = [b[0], b[1], b[2], b[3]];
            if le {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            }
        })
    };
    let u64_at = |at: usize| {
        bytes.get(at..at + 8).map(|b| {
            let b: [u8; 8] = b.try_into().unwrap_or_default();
            if le {
                u64::from_le_bytes(b)
            } else {
                u64::from_be_bytes(b)
            }
        })
    };
    let big = match u16_at(2) {
        Some(42) => false,
        Some(43) => true,
        _ => return Ok(()),
    };
    let first = if big {
        u64_at(8)
    } else {
        u32_at(4).map(u64::from)
    };
    let mut pending: Vec<u64> = first.into_iter().collect();
    let mut seen = Vec::new();
    while let Some(at) = pending.pop() {
        if at == 0 || seen.contains(&at) || seen.len() >= MAX_IFDS {
            continue;
        }
        seen.push(at);
        let Ok(at) = usize::try_from(at) else {
            continue;
        };
        let (count, entries, entry_len) = if big {
            (u64_at(at).unwrap_or(0), at + 8, 20)
        } else {
            (u16_at(at).map_or(0, u64::from), at + 2, 12)
        };
        let count = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(bytes.len() / entry_len);
        for i in 0..count {
            let e = entries + i * entry_len;
            let (Some(tag), Some(kind)) = (u16_at(e), u16_at(e + 2)) else {
                break;
            };
            let n = if big {
                u64_at(e + 4)
            } else {
                u32_at(e + 4).map(u64::from)
            };
            let Some(n) = n else { break };
            if kind == 2 && n > bytes.len() as u64 {
                return Err(format!(
                    "a text field of its TIFF directory claims {n} bytes, more than the whole file"
                ));
            }
            if SUB_IFD_TAGS.contains(&tag) && n == 1 {
                let value = if big {
                    u64_at(e + 12)
                } else {
                    u32_at(e + 8).map(u64::from)
                };
                pending.extend(value);
            }
        }
        let next_at = entries + count * entry_len;
        let next = if big {
            u64_at(next_at)
        } else {
            u32_at(next_at).map(u64::from)
        };
        pending.extend(next);
    }
    Ok(())
}
