//! Turning a fuzzer's byte string into structured choices.
//!
//! Every read takes bytes from the front; once the input is used up every
//! read returns its smallest value, so any byte string decodes to a valid
//! (if short) sequence of operations and a mutation of a few bytes changes
//! a few choices. It does not try to be a general `arbitrary`: the targets
//! decide what each byte means.

/// A cursor over a fuzz input.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Reads from the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// Whether every byte has been used.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte (0 when used up).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next `n` bytes, or what is left (little endian).
    fn uint(&mut self, n: usize) -> u64 {
        let take = n.min(self.data.len());
        let (head, rest) = self.data.split_at(take);
        self.data = rest;
        head.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
    }

    /// The next two bytes as a number.
    pub fn u16(&mut self) -> u16 {
        self.uint(2) as u16
    }

    /// The next eight bytes as a number.
    pub fn u64(&mut self) -> u64 {
        self.uint(8)
    }

    /// One bit of choice.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 != 0
    }

    /// A number in `lo..hi` (`lo` when the range is empty); takes one byte
    /// for ranges up to 256 values, two beyond.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let span = hi - lo;
        let raw = if span <= 256 { u64::from(self.u8()) } else { u64::from(self.u16()) };
        lo + raw % span
    }

    /// Up to `max` bytes, the count taken from the input first.
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = (self.range(0, max as u64 + 1) as usize).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_little_endian_and_zero_past_the_end() {
        let mut i = Input::new(&[1, 2, 3]);
        assert_eq!(i.u16(), 0x0201);
        assert_eq!(i.u64(), 3);
        assert!(i.is_empty());
        assert_eq!(i.u8(), 0);
        assert_eq!(i.range(5, 9), 5);
    }

    #[test]
    fn ranges_stay_in_bounds() {
        let data: Vec<u8> = (0..=255).collect();
        let mut i = Input::new(&data);
        while !i.is_empty() {
            let v = i.range(3, 10);
            assert!((3..10).contains(&v), "{v}");
            let w = i.range(0, 4096);
            assert!(w < 4096);
        }
        assert_eq!(Input::new(&[7]).range(4, 4), 4);
    }

    #[test]
    fn bytes_takes_a_counted_slice() {
        let mut i = Input::new(&[2, 9, 8, 7]);
        assert_eq!(i.bytes(16), &[9, 8]);
        assert_eq!(i.bytes(16), &[] as &[u8]);
    }
}
