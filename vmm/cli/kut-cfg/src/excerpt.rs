//! Text from the file, cut short for a message: a 10 MB line must not
//! become a 10 MB error.

use std::borrow::Cow;

/// Most bytes of the file's text one message quotes.
pub const EXCERPT_MAX: usize = 160;

/// `s` cut to at most `max` bytes (at a character boundary), with "…"
/// appended when something was cut.
pub fn cut(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &s[..end]))
}

/// `s` quoted for a message, cut to [`EXCERPT_MAX`] bytes; a cut one
/// says how long the whole was: `"abc"… (10485760 bytes)`.
pub fn excerpt(s: &str) -> String {
    if s.len() <= EXCERPT_MAX {
        return format!("{s:?}");
    }
    let mut end = EXCERPT_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &s[..end], s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_whole_and_long_text_is_cut() {
        assert_eq!(excerpt("ab"), "\"ab\"");
        let long = "x".repeat(10 << 20);
        let e = excerpt(&long);
        assert!(e.len() < EXCERPT_MAX + 40, "{} bytes", e.len());
        assert!(e.ends_with("… (10485760 bytes)"), "{}", &e[e.len() - 30..]);
        // A cut never splits a character.
        let e = excerpt(&"é".repeat(200));
        assert!(e.contains('…'));
        assert_eq!(cut("héllo", 2), "h…");
        assert_eq!(cut("hello", 5), "hello");
    }
}
