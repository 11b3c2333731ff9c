//! String port I/O (`rep insb`, `outsw`, …) through [`handle_exit`]: KVM
//! batches the accesses into one exit with a width and a count; every
//! device must see each access separately, at the width the CPU used.

use std::io::Write;
use std::sync::{Arc, Mutex};

use devices::legacy::{
    fw_cfg_key, FwCfg, FwCfgInfo, TestdevPorts, COM1_PORT, EXIT_PORT, EXIT_PORT_LEN, FW_CFG_PORT, FW_CFG_PORT_LEN,
    SERIAL_PORT_LEN, TESTDEV_PORT, TESTDEV_PORT_LEN,
};
use devices::{BusDevice, ExitLatch, ExitPort, SerialDevice};

use super::*;

/// `ins` of `count` accesses of `size` bytes.
fn ins(port: u16, size: usize, data: &mut [u8]) -> Exit<'_> {
    Exit::Port(PortExit::input(port, size, data))
}

/// `outs` of `data.len() / size` accesses of `size` bytes.
fn outs(port: u16, size: usize, data: &[u8]) -> Exit<'_> {
    Exit::Port(PortExit::output(port, size, data))
}

fn bus_with(device: Arc<Mutex<dyn BusDevice>>, port: u16, len: u64) -> Buses {
    let mut buses = Buses { kernel_ports: false, ..Buses::default() };
    buses.pio.insert(device, u64::from(port), len).unwrap();
    buses
}

/// Records every access: (offset, bytes); reads return the access number.
#[derive(Default)]
struct Recorder {
    writes: Vec<(u64, Vec<u8>)>,
    reads: Vec<(u64, usize)>,
}

impl BusDevice for Recorder {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.reads.push((offset, data.len()));
        data.fill(self.reads.len() as u8);
    }
    fn write(&mut self, offset: u64, data: &[u8]) {
        self.writes.push((offset, data.to_vec()));
    }
}

#[test]
fn the_port_bus_sees_each_access_at_its_width() {
    let rec = Arc::new(Mutex::new(Recorder::default()));
    let buses = bus_with(rec.clone(), 0x100, 4);
    let c = ExitCounters::default();
    assert_eq!(handle_exit(outs(0x100, 2, &[1, 2, 3, 4, 5, 6]), &buses, &c), ExitAction::Continue);
    let mut d = [0u8; 6];
    assert_eq!(handle_exit(ins(0x102, 2, &mut d), &buses, &c), ExitAction::Continue);
    assert_eq!(d, [1, 1, 2, 2, 3, 3]);
    let mut d = [0u8; 8];
    handle_exit(ins(0x100, 4, &mut d), &buses, &c);
    assert_eq!(d, [4, 4, 4, 4, 5, 5, 5, 5]);
    let r = rec.lock().unwrap();
    assert_eq!(r.writes, vec![(0, vec![1, 2]), (0, vec![3, 4]), (0, vec![5, 6])]);
    assert_eq!(r.reads, vec![(2, 2), (2, 2), (2, 2), (0, 4), (0, 4)]);
    // One exit is one exit, however many accesses it carried.
    assert_eq!(c.snapshot().pio, 3);
}

#[test]
fn unclaimed_string_input_is_all_ones_per_access() {
    let buses = Buses { kernel_ports: false, ..Buses::default() };
    let mut d = [0u8; 4];
    handle_exit(ins(0x60, 1, &mut d), &buses, &ExitCounters::default());
    assert_eq!(d, [0xff; 4]);
}

#[test]
fn fw_cfg_data_port_rep_insb_reads_the_signature() {
    let info = FwCfgInfo { ram_size: 1 << 20, cpus: 1, cmdline: String::new() };
    let buses = bus_with(Arc::new(Mutex::new(FwCfg::new(&info))), FW_CFG_PORT, FW_CFG_PORT_LEN);
    let c = ExitCounters::default();
    handle_exit(outs(FW_CFG_PORT, 2, &fw_cfg_key::SIGNATURE.to_le_bytes()), &buses, &c);
    let mut d = [0u8; 4];
    handle_exit(ins(FW_CFG_PORT + 1, 1, &mut d), &buses, &c);
    assert_eq!(&d, b"QEMU");
}

/// A `Write` the test reads back.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn serial_rep_outsb_prints_and_rep_insb_reads_the_status() {
    let sink = Sink::default();
    let serial = Arc::new(Mutex::new(SerialDevice::new(Box::new(sink.clone())).unwrap()));
    let buses = bus_with(serial, COM1_PORT, SERIAL_PORT_LEN);
    let c = ExitCounters::default();
    handle_exit(outs(COM1_PORT, 1, b"hi!"), &buses, &c);
    assert_eq!(sink.0.lock().unwrap().as_slice(), b"hi!");
    // The line status register: transmitter empty, holding register empty.
    let mut d = [0u8; 4];
    handle_exit(ins(COM1_PORT + 5, 1, &mut d), &buses, &c);
    assert_eq!(d, [0x60; 4]);
}

#[test]
fn pc_testdev_scratch_port_is_one_byte_per_access() {
    let buses = bus_with(Arc::new(Mutex::new(TestdevPorts::default())), TESTDEV_PORT, TESTDEV_PORT_LEN);
    let c = ExitCounters::default();
    handle_exit(outs(TESTDEV_PORT, 4, &[1, 2, 3, 4]), &buses, &c);
    let mut d = [0u8; 4];
    handle_exit(ins(TESTDEV_PORT, 1, &mut d), &buses, &c);
    assert_eq!(d, [1, 1, 1, 1], "rep insb reads byte 0 four times");
    // rep outsb writes byte 0 three times: the last one stays.
    handle_exit(outs(TESTDEV_PORT, 1, &[9, 8, 7]), &buses, &c);
    let mut d = [0u8; 4];
    handle_exit(ins(TESTDEV_PORT, 4, &mut d), &buses, &c);
    assert_eq!(d, [7, 2, 3, 4]);
}

#[test]
fn exit_port_rep_outsw_exits_with_the_first_word() {
    let latch = Arc::new(ExitLatch::new().unwrap());
    let buses = bus_with(Arc::new(Mutex::new(ExitPort::new(latch.clone()))), EXIT_PORT, EXIT_PORT_LEN);
    handle_exit(outs(EXIT_PORT, 2, &[0x21, 0, 0x33, 0]), &buses, &ExitCounters::default());
    assert_eq!(latch.status(), Some(ExitPort::status_for(0x21)));
    assert_eq!(latch.status(), Some(67));
}

#[test]
fn string_output_to_a_kernel_port_is_still_an_action() {
    let buses = Buses::default();
    let c = ExitCounters::default();
    assert_eq!(handle_exit(outs(HCALL_PORT, 1, &[1, 2]), &buses, &c), ExitAction::Hypercall);
    assert_eq!(handle_exit(outs(EXC_PORT, 1, &[14, 14]), &buses, &c), ExitAction::Exception);
}
