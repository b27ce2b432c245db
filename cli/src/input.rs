//! Reading secrets and payloads from files, descriptors and stdin without stray copies.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use anyhow::Context as _;
use zeroize::Zeroizing;

/// Reads everything from `reader` into a zeroizing buffer.
///
/// `Read::read_to_end` grows its `Vec` by reallocating, and each old allocation is freed
/// without being wiped: a key read that way leaves pieces of itself on the heap. Here every
/// growth copies into a new zeroizing buffer and wipes the old one.
pub(crate) fn read_secret(
    mut reader: impl Read,
    size_hint: usize,
) -> io::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(size_hint.max(4096)));
    let mut chunk = Zeroizing::new([0u8; 4096]);
    loop {
        let n = match reader.read(&mut chunk[..]) {
            Ok(0) => return Ok(buf),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if buf.len() + n > buf.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity((buf.len() + n) * 2));
            bigger.extend_from_slice(&buf);
            buf = bigger;
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

/// Reads a secret from a file path, or from stdin when the path is `-`.
pub(crate) fn read_secret_file(path: &Path) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    if path == Path::new("-") {
        return read_secret(io::stdin().lock(), 0).context("cannot read stdin");
    }
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata().map_or(0, |meta| meta.len() as usize);
    read_secret(file, size + 1).with_context(|| format!("cannot read {}", path.display()))
}

/// Drops trailing ASCII whitespace (the newline editors and `echo` add to a secret file).
pub(crate) fn trim_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |last| last + 1);
    bytes.get(..end).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_more_than_one_chunk_exactly() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(&read_secret(&data[..], 0).unwrap()[..], &data[..]);
    }

    #[test]
    fn trims_only_trailing_whitespace() {
        assert_eq!(trim_end(b"  secret \r\n\t"), b"  secret");
        assert_eq!(trim_end(b"\n\n"), b"");
    }
}
