//! Zip archives of whole files held in memory: evidence packs and data-subject archives
//! are written with [`zip`] and read back (by verifiers and tests) with [`unzip`].

use std::collections::BTreeMap;
use std::io::{Read, Write};

use crate::error::{ApiError, ApiResult};

/// `entries` (path → content) as one deflated zip archive, in path order.
pub fn zip(entries: &BTreeMap<String, Vec<u8>>) -> ApiResult<Vec<u8>> {
    let failed = |err: &dyn std::fmt::Display| ApiError::internal(format!("zipping: {err}"));
    let mut writer = ::zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = ::zip::write::SimpleFileOptions::default()
        .compression_method(::zip::CompressionMethod::Deflated)
        .large_file(true);
    for (path, bytes) in entries {
        writer.start_file(path, options).map_err(|e| failed(&e))?;
        writer.write_all(bytes).map_err(|e| failed(&e))?;
    }
    Ok(writer.finish().map_err(|e| failed(&e))?.into_inner())
}

/// The entries of the zip archive `bytes` whose paths `wanted` accepts, each refused —
/// not cut short — above `max_bytes` (a zip bomb, a forged size).
pub fn unzip(
    bytes: &[u8],
    max_bytes: u64,
    wanted: impl Fn(&str) -> bool,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut archive = ::zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a zip archive: {e}"))?;
    let mut entries = BTreeMap::new();
    for n in 0..archive.len() {
        let file = archive.by_index(n).map_err(|e| format!("entry {n}: {e}"))?;
        let path = file
            .name()
            .map_err(|e| format!("entry {n}: {e}"))?
            .into_owned();
        if !wanted(&path) {
            continue;
        }
        let too_large = || format!("{path} is larger than {max_bytes} bytes");
        if file.size() > max_bytes {
            return Err(too_large());
        }
        let mut content = Vec::new();
        file.take(max_bytes + 1)
            .read_to_end(&mut content)
            .map_err(|e| format!("reading {path}: {e}"))?;
        if content.len() as u64 > max_bytes {
            return Err(too_large());
        }
        entries.insert(path, content);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_as_written_and_oversized_ones_are_refused() -> ApiResult<()> {
        let entries: BTreeMap<String, Vec<u8>> = [
            ("a.json".to_owned(), b"{}".to_vec()),
            ("files/x/b.txt".to_owned(), vec![7; 4096]),
        ]
        .into();
        let bytes = zip(&entries)?;
        assert_eq!(unzip(&bytes, 1 << 20, |_| true), Ok(entries.clone()));
        let only = unzip(&bytes, 1 << 20, |p| p.ends_with(".json"));
        assert_eq!(only.map(|e| e.len()), Ok(1));
        assert!(unzip(&bytes, 100, |_| true).is_err());
        Ok(())
    }
}
