//! The 64-bit task-state segment, with the stacks the CPU switches to and
//! an I/O permission bitmap.
//!
//! The bitmap decides which ports user mode (running with IOPL 0) may
//! reach ([`UserPorts`]): for the VMM's own ABI every port except the
//! VMM's kernel ports, so a user guest can drive the serial port and the
//! exit port directly but cannot forge an exception report or a hypercall
//! completion; for a kind whose guests see no ports (Solo5), none, so any
//! `in`/`out` is a #GP.

/// Size of the TSS proper (without the bitmap).
pub const TSS_HEADER_SIZE: usize = 0x68;
/// Bytes of the I/O permission bitmap (one bit per port).
pub const IOPB_SIZE: usize = 65536 / 8;
/// The TSS with its bitmap and the terminating all-ones byte.
pub const TSS_SIZE: usize = TSS_HEADER_SIZE + IOPB_SIZE + 1;

/// The ports user mode may use, as the I/O permission bitmap says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserPorts {
    /// Every port except these.
    AllBut(Vec<std::ops::Range<u16>>),
    /// This one port only (any width of access that stays on it).
    Only(u16),
    /// No port: every `in`, `out`, `ins` and `outs` at CPL 3 is a #GP.
    None,
}

impl Default for UserPorts {
    fn default() -> Self {
        UserPorts::AllBut(Vec::new())
    }
}

/// What goes into one vCPU's TSS.
#[derive(Clone, Debug, Default)]
pub struct Tss {
    /// Stack for a switch to CPL 0 without IST.
    pub rsp0: u64,
    /// IST1..IST7 (index 0 is IST1).
    pub ist: [u64; 7],
    /// Ports user mode may use.
    pub ports: UserPorts,
}

impl Tss {
    /// The TSS bytes, bitmap included.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; TSS_SIZE];
        b[4..12].copy_from_slice(&self.rsp0.to_le_bytes());
        for (i, ist) in self.ist.iter().enumerate() {
            let off = 36 + 8 * i;
            b[off..off + 8].copy_from_slice(&ist.to_le_bytes());
        }
        b[102..104].copy_from_slice(&(TSS_HEADER_SIZE as u16).to_le_bytes());
        let iopb = &mut b[TSS_HEADER_SIZE..];
        match &self.ports {
            UserPorts::AllBut(denied) => {
                for port in denied.iter().flat_map(|r| r.clone()) {
                    iopb[port as usize / 8] |= 1 << (port % 8);
                }
            }
            UserPorts::Only(port) => {
                iopb[..IOPB_SIZE].fill(0xff);
                iopb[usize::from(*port) / 8] &= !(1 << (port % 8));
            }
            UserPorts::None => iopb[..IOPB_SIZE].fill(0xff),
        }
        // The byte after the bitmap must be all-ones.
        iopb[IOPB_SIZE] = 0xff;
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let t = Tss {
            rsp0: 0x1111,
            ist: [0x2222, 0x3333, 0, 0, 0, 0, 0x7777],
            ports: UserPorts::AllBut(vec![0xe0..0xe3, 0x3f0..0x3f0]),
        };
        let b = t.to_bytes();
        assert_eq!(b.len(), TSS_SIZE);
        let q = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        assert_eq!(q(4), 0x1111);
        assert_eq!(q(36), 0x2222);
        assert_eq!(q(44), 0x3333);
        assert_eq!(q(84), 0x7777);
        assert_eq!(u16::from_le_bytes([b[102], b[103]]), 0x68);
        let iopb = &b[TSS_HEADER_SIZE..];
        assert_eq!(iopb[0xe0 / 8], 0b0000_0111);
        assert_eq!(iopb[0x3f8 / 8], 0);
        assert_eq!(iopb[IOPB_SIZE], 0xff);
    }

    #[test]
    fn no_ports_denies_every_port() {
        let b = Tss { ports: UserPorts::None, ..Tss::default() }.to_bytes();
        assert_eq!(b.len(), TSS_SIZE);
        assert!(b[TSS_HEADER_SIZE..].iter().all(|&x| x == 0xff));
        let b = Tss { ports: UserPorts::Only(0xe8), ..Tss::default() }.to_bytes();
        let iopb = &b[TSS_HEADER_SIZE..];
        assert_eq!(iopb[0xe8 / 8], 0xfe);
        assert_eq!(iopb.iter().filter(|&&x| x != 0xff).count(), 1);
        // The default allows every port.
        let b = Tss::default().to_bytes();
        assert!(b[TSS_HEADER_SIZE..TSS_HEADER_SIZE + IOPB_SIZE].iter().all(|&x| x == 0));
    }
}
