//! Reading the files a user names (switch and topology files, custom eBPF
//! programs) with a size limit: a path to a device or a runaway file
//! (`/dev/zero`, a log) gets an error instead of filling the memory.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The largest file read (bytes): far above any real switch file, eBPF
/// object or topology.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// The bytes of `path`, or an error when it cannot be read or is larger
/// than [`MAX_FILE_BYTES`].
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    read_at_most(path, MAX_FILE_BYTES)
}

/// The text of `path` (UTF-8), with the limit of [`read`].
pub fn read_text(path: &Path) -> io::Result<String> {
    String::from_utf8(read(path)?).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not UTF-8 text (at byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// The bytes of `path` if there are at most `limit`.
pub fn read_at_most(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    File::open(path)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endless_and_oversized_files_are_refused() {
        let e = read_at_most(Path::new("/dev/zero"), 4096).unwrap_err();
        assert_eq!(e.to_string(), "larger than 4096 bytes");
        assert!(read(Path::new("/dev/zero")).is_err());
        let dir = std::env::temp_dir().join(format!("fs-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("t.yaml");
        std::fs::write(&f, "abcd").unwrap();
        assert_eq!(read_at_most(&f, 4).unwrap(), b"abcd");
        assert!(read_at_most(&f, 3).is_err());
        assert_eq!(read_text(&f).unwrap(), "abcd");
        std::fs::write(&f, [0x61, 0xff]).unwrap();
        assert_eq!(
            read_text(&f).unwrap_err().to_string(),
            "not UTF-8 text (at byte 1)"
        );
        assert!(read(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
