//! `getdents64` records (`struct linux_dirent64`): `d_ino` (u64),
//! `d_off` (i64, the position to resume after this entry), `d_reclen`
//! (u16), `d_type` (u8), the NUL-terminated name, padded to 8 bytes.

/// Bytes before the name.
pub const HEADER: usize = 19;

/// The length of the record for a name of `name_len` bytes.
pub fn record_len(name_len: usize) -> usize {
    (HEADER + name_len + 1).next_multiple_of(8)
}

/// Appends the record for one entry to `out`.
pub fn push_record(out: &mut Vec<u8>, ino: u64, next_pos: u64, d_type: u8, name: &[u8]) {
    let len = record_len(name.len());
    let start = out.len();
    out.extend_from_slice(&ino.to_le_bytes());
    out.extend_from_slice(&next_pos.to_le_bytes());
    out.extend_from_slice(&(len as u16).to_le_bytes());
    out.push(d_type);
    out.extend_from_slice(name);
    out.resize(start + len, 0);
}

/// One record read back (for tests and the kind's own checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `d_ino`.
    pub ino: u64,
    /// `d_off`.
    pub off: u64,
    /// `d_type`.
    pub d_type: u8,
    /// The name, without its NUL.
    pub name: Vec<u8>,
}

/// Parses a `getdents64` buffer; `None` if a record is malformed.
pub fn parse_records(mut buf: &[u8]) -> Option<Vec<Record>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let head = buf.get(..HEADER)?;
        let ino = u64::from_le_bytes(head[0..8].try_into().ok()?);
        let off = u64::from_le_bytes(head[8..16].try_into().ok()?);
        let reclen = usize::from(u16::from_le_bytes(head[16..18].try_into().ok()?));
        if reclen < HEADER + 1 || reclen % 8 != 0 {
            return None;
        }
        let rec = buf.get(..reclen)?;
        let name_len = rec[HEADER..].iter().position(|&b| b == 0)?;
        out.push(Record { ino, off, d_type: head[18], name: rec[HEADER..HEADER + name_len].to_vec() });
        buf = &buf[reclen..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_bytes() {
        let mut out = Vec::new();
        push_record(&mut out, 0x1122, 7, libc::DT_REG, b"abcde");
        assert_eq!(out.len(), 32, "19 + 5 + NUL = 25, padded to 32");
        assert_eq!(&out[0..8], &0x1122u64.to_le_bytes());
        assert_eq!(&out[8..16], &7u64.to_le_bytes());
        assert_eq!(&out[16..18], &32u16.to_le_bytes());
        assert_eq!(out[18], libc::DT_REG);
        assert_eq!(&out[19..25], b"abcde\0");
        assert_eq!(record_len(4), 24);
        assert_eq!(record_len(5), 32);
        let parsed = parse_records(&out).unwrap();
        assert_eq!(parsed, vec![Record { ino: 0x1122, off: 7, d_type: libc::DT_REG, name: b"abcde".to_vec() }]);
    }
}
