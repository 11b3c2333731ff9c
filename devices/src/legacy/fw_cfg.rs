//! A read-only QEMU firmware-configuration device (`fw_cfg`) on ports
//! `0x510` (selector, 16-bit write) and `0x511` (data, read byte by byte),
//! with the items a firmware-less test kernel reads: the signature, the
//! interface ID, the RAM size, the CPU counts and the kernel command line.
//!
//! What it does not do: the DMA interface (the ID says there is none),
//! writable items, or files (the file directory is empty).

use std::collections::BTreeMap;

use crate::bus::{put_le_value, BusDevice};

/// Selector port.
pub const FW_CFG_PORT: u16 = 0x510;
/// Ports the device occupies (selector and data).
pub const FW_CFG_PORT_LEN: u64 = 2;

/// Item keys (QEMU's numbering).
pub mod key {
    /// `"QEMU"`.
    pub const SIGNATURE: u16 = 0x00;
    /// Interface features: bit 0 traditional I/O, bit 1 DMA.
    pub const ID: u16 = 0x01;
    /// RAM size in bytes, u64.
    pub const RAM_SIZE: u16 = 0x03;
    /// CPUs present at boot, u16.
    pub const NB_CPUS: u16 = 0x05;
    /// Most CPUs, u16.
    pub const MAX_CPUS: u16 = 0x0f;
    /// Length of the command line including its NUL, u32.
    pub const CMDLINE_SIZE: u16 = 0x14;
    /// The command line, NUL terminated.
    pub const CMDLINE_DATA: u16 = 0x15;
    /// The file directory (a big-endian u32 count, here 0).
    pub const FILE_DIR: u16 = 0x19;
}

/// What the device reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FwCfgInfo {
    /// Guest RAM in bytes.
    pub ram_size: u64,
    /// vCPUs.
    pub cpus: u16,
    /// Kernel command line.
    pub cmdline: String,
}

/// The device: a selected item and a read position in it.
#[derive(Debug)]
pub struct FwCfg {
    items: BTreeMap<u16, Vec<u8>>,
    selected: u16,
    pos: usize,
}

impl FwCfg {
    /// A device serving `info`.
    pub fn new(info: &FwCfgInfo) -> Self {
        let mut items = BTreeMap::new();
        items.insert(key::SIGNATURE, b"QEMU".to_vec());
        items.insert(key::ID, 1u32.to_le_bytes().to_vec());
        items.insert(key::RAM_SIZE, info.ram_size.to_le_bytes().to_vec());
        items.insert(key::NB_CPUS, info.cpus.to_le_bytes().to_vec());
        items.insert(key::MAX_CPUS, info.cpus.to_le_bytes().to_vec());
        let mut cmd = info.cmdline.as_bytes().to_vec();
        cmd.push(0);
        items.insert(key::CMDLINE_SIZE, (cmd.len() as u32).to_le_bytes().to_vec());
        items.insert(key::CMDLINE_DATA, cmd);
        items.insert(key::FILE_DIR, 0u32.to_be_bytes().to_vec());
        FwCfg { items, selected: key::SIGNATURE, pos: 0 }
    }

    fn next_byte(&mut self) -> u8 {
        // Unknown items and reads past the end read as 0, as in QEMU.
        let b = self.items.get(&self.selected).and_then(|v| v.get(self.pos)).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }
}

impl BusDevice for FwCfg {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match offset {
            1 => data.iter_mut().for_each(|b| *b = self.next_byte()),
            _ => put_le_value(data, u64::MAX),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset == 0 && data.len() == 2 {
            self.selected = u16::from_le_bytes([data[0], data[1]]);
            self.pos = 0;
        } else {
            log::debug!("fw_cfg: ignored {}-byte write at offset {offset}", data.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_item(d: &mut FwCfg, k: u16, n: usize) -> Vec<u8> {
        d.write(0, &k.to_le_bytes());
        (0..n)
            .map(|_| {
                let mut b = [0u8];
                d.read(1, &mut b);
                b[0]
            })
            .collect()
    }

    #[test]
    fn items() {
        let mut d = FwCfg::new(&FwCfgInfo { ram_size: 256 << 20, cpus: 3, cmdline: "a b".into() });
        assert_eq!(read_item(&mut d, key::SIGNATURE, 4), b"QEMU");
        assert_eq!(read_item(&mut d, key::ID, 4), [1, 0, 0, 0]);
        assert_eq!(read_item(&mut d, key::NB_CPUS, 2), [3, 0]);
        assert_eq!(read_item(&mut d, key::RAM_SIZE, 8), (256u64 << 20).to_le_bytes());
        assert_eq!(read_item(&mut d, key::CMDLINE_SIZE, 4), [4, 0, 0, 0]);
        assert_eq!(read_item(&mut d, key::CMDLINE_DATA, 5), b"a b\0\0");
        assert_eq!(read_item(&mut d, key::FILE_DIR, 4), [0; 4]);
        // Unknown item reads as zeros; reselecting restarts the item.
        assert_eq!(read_item(&mut d, 0x4242, 2), [0, 0]);
        assert_eq!(read_item(&mut d, key::SIGNATURE, 2), b"QE");
        // A wide read takes consecutive bytes.
        d.write(0, &key::SIGNATURE.to_le_bytes());
        let mut w = [0u8; 4];
        d.read(1, &mut w);
        assert_eq!(&w, b"QEMU");
        // A one-byte selector write is ignored.
        d.write(0, &[5]);
        let mut b = [0u8];
        d.read(1, &mut b);
        assert_eq!(b[0], 0);
    }
}
