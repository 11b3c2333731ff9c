//! Path strings as the guest passes them: split into components, with
//! Linux's length limits (`PATH_MAX`, `NAME_MAX`) and the facts the
//! callers need (absolute or not, trailing slash). Does not look
//! anything up: that is `resolve`.

use super::errno::{Errno, ENAMETOOLONG, ENOENT};

/// Longest path, counting its terminating NUL (`PATH_MAX`).
pub const PATH_MAX: usize = 4096;
/// Longest path component (`NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// A path split into its components.
#[derive(Debug, PartialEq, Eq)]
pub struct ParsedPath<'a> {
    /// Starts with `/`.
    pub absolute: bool,
    /// The non-empty components, `.` and `..` included, in order.
    pub components: Vec<&'a [u8]>,
    /// Ends with `/` (after at least one component), which requires the
    /// last component to be a directory.
    pub trailing_slash: bool,
}

/// Splits `path` (the bytes before its NUL; a NUL inside ends it, as in
/// C). An empty path is `ENOENT`, a path of `PATH_MAX` bytes or more or a
/// component longer than `NAME_MAX` is `ENAMETOOLONG`.
pub fn parse(path: &[u8]) -> Result<ParsedPath<'_>, Errno> {
    let path = match path.iter().position(|&b| b == 0) {
        Some(end) => &path[..end],
        None => path,
    };
    if path.is_empty() {
        return Err(ENOENT);
    }
    if path.len() >= PATH_MAX {
        return Err(ENAMETOOLONG);
    }
    let components: Vec<&[u8]> = path.split(|&b| b == b'/').filter(|c| !c.is_empty()).collect();
    if components.iter().any(|c| c.len() > NAME_MAX) {
        return Err(ENAMETOOLONG);
    }
    Ok(ParsedPath {
        absolute: path[0] == b'/',
        trailing_slash: !components.is_empty() && path.ends_with(b"/"),
        components,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_collapses_slashes() {
        let p = parse(b"//tmp///a/./b/../c/").unwrap();
        assert!(p.absolute);
        assert!(p.trailing_slash);
        assert_eq!(p.components, vec![&b"tmp"[..], b"a", b".", b"b", b"..", b"c"]);
        let p = parse(b"a").unwrap();
        assert!(!p.absolute && !p.trailing_slash);
        let root = parse(b"///").unwrap();
        assert!(root.absolute && root.components.is_empty() && !root.trailing_slash);
    }

    #[test]
    fn limits_as_linux() {
        assert_eq!(parse(b""), Err(ENOENT));
        assert_eq!(parse(b"\0abc"), Err(ENOENT));
        assert_eq!(parse(b"ab\0/cd").unwrap().components, vec![&b"ab"[..]]);
        let name = vec![b'x'; NAME_MAX];
        assert!(parse(&name).is_ok());
        let long = vec![b'x'; NAME_MAX + 1];
        assert_eq!(parse(&long), Err(ENAMETOOLONG));
        let mut path = b"/".to_vec();
        while path.len() < PATH_MAX - 1 {
            path.extend_from_slice(b"a/");
        }
        path.truncate(PATH_MAX - 1);
        assert!(parse(&path).is_ok());
        path.push(b'a');
        assert_eq!(parse(&path), Err(ENAMETOOLONG));
    }
}
