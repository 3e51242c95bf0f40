//! The building blocks of the canonical binary encoding shared by every signed structure.
//!
//! Integers are fixed-width big-endian; byte strings carry a length prefix of a width fixed by
//! their field; nothing is optional in a way that admits two spellings. [`Reader`] never panics on
//! any input: every read is bounds-checked and fails with `MALFORMED` naming the structure.

use crate::error::{Error, Result};

/// A cursor over bytes being decoded as the structure `what`.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Starts decoding `bytes` as a `what` (the name appears in errors).
    pub fn new(what: &'static str, bytes: &'a [u8]) -> Self {
        Reader {
            bytes,
            pos: 0,
            what,
        }
    }

    /// How many bytes have been read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// The next `len` bytes.
    pub fn take(&mut self, len: usize, field: &str) -> Result<&'a [u8]> {
        if self.remaining() < len {
            return Err(Error::malformed(
                self.what,
                format!(
                    "truncated in {field}: need {len} bytes, {} left",
                    self.remaining()
                ),
            ));
        }
        let out = &self.bytes[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self, field: &str) -> Result<u8> {
        Ok(self.array::<1>(field)?[0])
    }

    /// A big-endian `u16`.
    pub fn u16(&mut self, field: &str) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self, field: &str) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self, field: &str) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// Succeeds only if every byte has been read (`TRAILING_BYTES` otherwise).
    pub fn finish(self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(Error::TrailingBytes {
                what: self.what,
                count,
            }),
        }
    }
}

/// Appends a big-endian integer or raw bytes to an encoding buffer.
pub trait Writer {
    /// Appends one byte.
    fn put_u8(&mut self, value: u8);
    /// Appends a big-endian `u16`.
    fn put_u16(&mut self, value: u16);
    /// Appends a big-endian `u32`.
    fn put_u32(&mut self, value: u32);
    /// Appends a big-endian `u64`.
    fn put_u64(&mut self, value: u64);
    /// Appends raw bytes.
    fn put(&mut self, bytes: &[u8]);
}

impl Writer for Vec<u8> {
    fn put_u8(&mut self, value: u8) {
        self.push(value);
    }
    fn put_u16(&mut self, value: u16) {
        self.extend_from_slice(&value.to_be_bytes());
    }
    fn put_u32(&mut self, value: u32) {
        self.extend_from_slice(&value.to_be_bytes());
    }
    fn put_u64(&mut self, value: u64) {
        self.extend_from_slice(&value.to_be_bytes());
    }
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounds_checked() {
        let mut reader = Reader::new("thing", &[1, 2, 3]);
        assert_eq!(reader.u16("a").unwrap(), 0x0102);
        assert_eq!(reader.u32("b").unwrap_err().code(), "MALFORMED");
        assert_eq!(reader.u8("c").unwrap(), 3);
        reader.finish().unwrap();
        let reader = Reader::new("thing", &[1]);
        assert_eq!(reader.finish().unwrap_err().code(), "TRAILING_BYTES");
    }
}
