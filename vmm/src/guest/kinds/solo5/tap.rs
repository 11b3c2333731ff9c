//! The host side of a Solo5 network device: a Linux tap interface
//! opened as `solo5-spt` opens one (`/dev/net/tun`, `TUNSETIFF` with
//! `IFF_TAP | IFF_NO_PI`, non-blocking), its MTU, and the readiness poll
//! the unikernel's yield waits in. Every `unsafe` block of the network
//! device is here.
//!
//! Opening ([`Tap::open`], on the main thread before the run, so that
//! no filter has to allow it): the interface must exist and be up or
//! running (else `solo5-spt` would create it on open), be a tap, and
//! not be attached to another process already (a single-queue tap
//! takes one reader: the kernel answers `EBUSY`). Each refusal is its
//! own [`TapError`].
//!
//! Inheriting ([`Tap::inherit`], `solo5-spt`'s `--net:NAME=@FD`): a
//! descriptor of an attached tap that the caller opened and left open
//! across `exec`. It must be open, not close-on-exec (every descriptor
//! the VMM opens itself is, so none of its own can be taken by mistake),
//! a tap queue (`TUNGETIFF` answers, with `IFF_TAP` and `IFF_NO_PI`), and
//! is made non-blocking, as `solo5-spt` makes it. Its MTU is the
//! interface's where the interface of that name in the VMM's network
//! namespace is the same device (same hardware address), else 1500, the
//! MTU `solo5-spt` always reports.
//!
//! What this module does not do: decide what a unikernel may read or
//! write (that is `net.rs`).

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use thiserror::Error;

/// `IFNAMSIZ`: an interface name and its terminator.
const IFNAMSIZ: usize = 16;
/// `TUNSETIFF` (`_IOW('T', 202, int)`).
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
/// `TUNGETIFF` (`_IOR('T', 210, unsigned int)`).
const TUNGETIFF: libc::c_ulong = 0x8004_54d2;
/// `IFF_TAP`, `IFF_NO_PI`: an Ethernet device, frames without a header.
const IFF_TAP: i16 = 0x0002;
const IFF_NO_PI: i16 = 0x1000;
/// The MTU an inherited tap gets where its interface cannot be asked
/// (`solo5-spt` gives every device this one).
const DEFAULT_MTU: u16 = 1500;
/// The prefix of an inherited descriptor in `--net:NAME=@FD`.
pub const FD_PREFIX: char = '@';

/// Why a tap interface cannot be attached.
#[derive(Debug, Error)]
pub enum TapError {
    /// The name cannot be an interface's.
    #[error("'{0}' is not an interface name (1 to 15 bytes, no '/', ':' or white space)")]
    BadName(String),
    /// No interface has that name (in this network namespace).
    #[error("no network interface '{0}' (create it with `ip tuntap add {0} mode tap` and `ip link set {0} up`)")]
    Missing(String),
    /// The interface is neither up nor running.
    #[error("interface '{0}' is down (`ip link set {0} up`)")]
    Down(String),
    /// The interface exists but is not a tap.
    #[error("interface '{0}' is not a tap interface")]
    NotTap(String),
    /// Another process holds the tap.
    #[error("tap interface '{0}' is in use by another process")]
    Busy(String),
    /// The VMM may not attach it.
    #[error("not allowed to attach tap interface '{0}' (it needs CAP_NET_ADMIN, or a tap owned by this user)")]
    Denied(String),
    /// Its MTU does not fit the manifest's 16-bit field.
    #[error("interface '{name}' has MTU {mtu}, more than a Solo5 manifest holds (65535)")]
    Mtu {
        /// The interface.
        name: String,
        /// Its MTU.
        mtu: i32,
    },
    /// `@FD` names no open descriptor.
    #[error("descriptor {0} (from @{0}) is not open")]
    FdNotOpen(i32),
    /// `@FD` names a descriptor the VMM opened itself (close-on-exec),
    /// not one the caller passed in.
    #[error("descriptor {0} (from @{0}) was not inherited from the caller (it is close-on-exec)")]
    FdNotInherited(i32),
    /// `@FD` is not an attached tap queue.
    #[error("descriptor {0} (from @{0}) is not an attached tap interface")]
    FdNotTap(i32),
    /// `@FD` is a tap whose frames carry a packet-information header.
    #[error("descriptor {0} (from @{0}) is a tap opened without IFF_NO_PI")]
    FdWithHeader(i32),
    /// Another host error.
    #[error("interface '{name}': {what}: {source}")]
    Io {
        /// The interface.
        name: String,
        /// What failed.
        what: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// `struct ifreq`: a name and a 24-byte union (flags or MTU at its start).
#[repr(C)]
struct IfReq {
    name: [u8; IFNAMSIZ],
    data: [u8; 24],
}

impl IfReq {
    fn new(name: &str) -> Self {
        let mut r = IfReq { name: [0; IFNAMSIZ], data: [0; 24] };
        r.name[..name.len()].copy_from_slice(name.as_bytes());
        r
    }

    fn short(&self) -> i16 {
        i16::from_ne_bytes([self.data[0], self.data[1]])
    }

    fn int(&self) -> i32 {
        i32::from_ne_bytes([self.data[0], self.data[1], self.data[2], self.data[3]])
    }
}

/// Checks that `name` can be a Linux interface's name.
pub fn check_name(name: &str) -> Result<(), TapError> {
    let ok = !name.is_empty()
        && name.len() < IFNAMSIZ
        && name != "."
        && name != ".."
        && name.bytes().all(|c| c.is_ascii_graphic() && c != b'/' && c != b':');
    if ok {
        Ok(())
    } else {
        Err(TapError::BadName(name.to_owned()))
    }
}

/// `ioctl(fd, req, &ifr)`.
fn ifreq_ioctl(fd: &OwnedFd, req: libc::c_ulong, ifr: &mut IfReq) -> io::Result<()> {
    // SAFETY: `fd` is an open descriptor; `ifr` is a live, writable
    // `struct ifreq` (40 bytes, as the kernel reads and writes for these
    // requests); the kernel touches nothing else.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, ifr as *mut IfReq) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// An open descriptor from a raw system-call result.
fn owned(rc: libc::c_int) -> io::Result<OwnedFd> {
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `rc` is a descriptor the call just opened and nothing else
    // owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc) })
}

/// What `--net:NAME=...` attaches: an interface by name, or a tap
/// descriptor the caller passed in (`@FD`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TapSource {
    /// An interface name.
    Name(String),
    /// An inherited descriptor.
    Fd(i32),
}

impl TapSource {
    /// Parses `TAP` or `@FD` (decimal, 0 to `INT_MAX`, as `solo5-spt`
    /// takes it), checking an interface name as Linux would take it.
    pub fn parse(s: &str) -> Result<TapSource, TapError> {
        match s.strip_prefix(FD_PREFIX) {
            Some(n) if !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) => {
                n.parse().map(TapSource::Fd).map_err(|_| TapError::BadName(s.to_owned()))
            }
            Some(_) => Err(TapError::BadName(s.to_owned())),
            None => check_name(s).map(|()| TapSource::Name(s.to_owned())),
        }
    }
}

/// Attaches what `spec` names (`TAP` or `@FD`): [`Tap::open`] or
/// [`Tap::inherit`].
pub fn attach(spec: &str) -> Result<Tap, TapError> {
    match TapSource::parse(spec)? {
        TapSource::Name(n) => Tap::open(&n),
        TapSource::Fd(fd) => Tap::inherit(fd),
    }
}

/// `fcntl(fd, cmd, arg)`.
fn fcntl(fd: i32, cmd: libc::c_int, arg: libc::c_int) -> io::Result<libc::c_int> {
    // SAFETY: F_GETFD, F_GETFL and F_SETFL take an integer argument and
    // touch no memory; an fd that is not open is EBADF.
    let rc = unsafe { libc::fcntl(fd, cmd, arg) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `ioctl(fd, SIOCGIFHWADDR, ifr)`'s address bytes (after the 2-byte
/// family), from a tap queue or a socket.
fn hwaddr(fd: &OwnedFd, ifr: &mut IfReq) -> io::Result<[u8; 6]> {
    ifreq_ioctl(fd, libc::SIOCGIFHWADDR, ifr)?;
    let mut m = [0u8; 6];
    m.copy_from_slice(&ifr.data[2..8]);
    Ok(m)
}

/// An attached tap interface.
#[derive(Debug)]
pub struct Tap {
    /// The tap's queue, non-blocking.
    pub file: File,
    /// The interface's MTU when it was attached.
    pub mtu: u16,
}

impl Tap {
    /// Attaches the tap interface `name`.
    pub fn open(name: &str) -> Result<Tap, TapError> {
        check_name(name)?;
        let io = |what: &'static str| move |source: io::Error| TapError::Io { name: name.to_owned(), what, source };
        // SAFETY: socket() takes no pointers.
        let sock = owned(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })
            .map_err(io("cannot open a socket to ask for its flags"))?;
        let mut ifr = IfReq::new(name);
        match ifreq_ioctl(&sock, libc::SIOCGIFFLAGS, &mut ifr) {
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Err(TapError::Missing(name.to_owned())),
            Err(e) => return Err(io("SIOCGIFFLAGS")(e)),
            Ok(()) => {}
        }
        if i32::from(ifr.short()) & (libc::IFF_UP | libc::IFF_RUNNING) == 0 {
            return Err(TapError::Down(name.to_owned()));
        }
        let path: &CStr = c"/dev/net/tun";
        // SAFETY: `path` is a NUL-terminated string that outlives the call.
        let fd = owned(unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) })
            .map_err(io("cannot open /dev/net/tun"))?;
        let mut ifr = IfReq::new(name);
        ifr.data[..2].copy_from_slice(&(IFF_TAP | IFF_NO_PI).to_ne_bytes());
        match ifreq_ioctl(&fd, TUNSETIFF, &mut ifr) {
            Ok(()) => {}
            Err(e) => {
                return Err(match e.raw_os_error() {
                    Some(libc::EBUSY) => TapError::Busy(name.to_owned()),
                    Some(libc::EINVAL) => TapError::NotTap(name.to_owned()),
                    Some(libc::EPERM) => TapError::Denied(name.to_owned()),
                    _ => io("TUNSETIFF")(e),
                })
            }
        }
        // The kernel may answer with another device (a name with `%d`).
        let got = ifr.name.split(|&c| c == 0).next().unwrap_or_default();
        if got != name.as_bytes() {
            return Err(TapError::NotTap(name.to_owned()));
        }
        let mut ifr = IfReq::new(name);
        ifreq_ioctl(&sock, libc::SIOCGIFMTU, &mut ifr).map_err(io("SIOCGIFMTU"))?;
        let mtu = u16::try_from(ifr.int()).map_err(|_| TapError::Mtu { name: name.to_owned(), mtu: ifr.int() })?;
        Ok(Tap { file: File::from(fd), mtu })
    }

    /// Takes the tap queue `fd` that the caller passed in across `exec`
    /// (`--net:NAME=@FD`), made non-blocking. Nothing is closed or
    /// changed unless it is one.
    pub fn inherit(fd: i32) -> Result<Tap, TapError> {
        let flags = match fcntl(fd, libc::F_GETFD, 0) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::EBADF) => return Err(TapError::FdNotOpen(fd)),
            Err(e) => return Err(TapError::Io { name: format!("@{fd}"), what: "F_GETFD", source: e }),
        };
        if flags & libc::FD_CLOEXEC != 0 {
            return Err(TapError::FdNotInherited(fd));
        }
        let name = format!("@{fd}");
        let io = |what: &'static str| {
            let name = name.clone();
            move |source: io::Error| TapError::Io { name, what, source }
        };
        let mut ifr = IfReq::new("");
        // SAFETY: `fd` is open (F_GETFD answered) and is not closed while
        // this borrow lives; it is only asked TUNGETIFF, which writes the
        // live `ifr` or fails without effect on anything not a tap.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let probe = borrowed.try_clone_to_owned().map_err(io("cannot duplicate it"))?;
        match ifreq_ioctl(&probe, TUNGETIFF, &mut ifr) {
            Ok(()) => {}
            Err(_) => return Err(TapError::FdNotTap(fd)),
        }
        if ifr.short() & IFF_TAP == 0 {
            return Err(TapError::FdNotTap(fd));
        }
        if ifr.short() & IFF_NO_PI == 0 {
            return Err(TapError::FdWithHeader(fd));
        }
        let ifname = String::from_utf8_lossy(ifr.name.split(|&c| c == 0).next().unwrap_or_default()).into_owned();
        let mtu = Self::mtu_of(&probe, &ifname).unwrap_or(DEFAULT_MTU);
        drop(probe);
        let status = fcntl(fd, libc::F_GETFL, 0).map_err(io("F_GETFL"))?;
        fcntl(fd, libc::F_SETFL, status | libc::O_NONBLOCK).map_err(io("F_SETFL O_NONBLOCK"))?;
        fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC).map_err(io("F_SETFD FD_CLOEXEC"))?;
        // SAFETY: `fd` is an open tap queue (TUNGETIFF answered) that the
        // caller handed over across exec (not close-on-exec, so none of
        // the VMM's own descriptors); from here the `Tap` owns it, and no
        // second `@FD` of the same number is attached (`kind.rs` refuses
        // a number given twice).
        let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        Ok(Tap { file, mtu })
    }

    /// The MTU of the interface `ifname` in the VMM's network namespace,
    /// if that is the device behind `queue` (the same hardware address).
    fn mtu_of(queue: &OwnedFd, ifname: &str) -> Option<u16> {
        check_name(ifname).ok()?;
        // SAFETY: socket() takes no pointers.
        let sock = owned(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) }).ok()?;
        let theirs = hwaddr(queue, &mut IfReq::new(ifname)).ok()?;
        let ours = hwaddr(&sock, &mut IfReq::new(ifname)).ok()?;
        if theirs != ours {
            log::info!("solo5: tap '{ifname}' is in another network namespace: MTU {DEFAULT_MTU}");
            return None;
        }
        let mut ifr = IfReq::new(ifname);
        ifreq_ioctl(&sock, libc::SIOCGIFMTU, &mut ifr).ok()?;
        u16::try_from(ifr.int()).ok()
    }
}

/// Waits up to `timeout` for any of `files` to be readable (or in error:
/// a read then says why); returns, for each, the events `poll` reported
/// (0: not ready). A signal ends the wait early with nothing ready.
pub fn poll_readable(files: &[&File], timeout: Duration) -> io::Result<Vec<i16>> {
    let mut fds: Vec<libc::pollfd> =
        files.iter().map(|f| libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `fds` holds `fds.len()` live pollfd structs the kernel
    // writes `revents` into; `ts` is a valid timespec read by the kernel;
    // no signal mask is passed (NULL, with the kernel's sigset size).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_ppoll,
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            &ts as *const libc::timespec,
            std::ptr::null::<libc::sigset_t>(),
            8usize,
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINTR) {
            return Ok(vec![0; fds.len()]);
        }
        return Err(e);
    }
    Ok(fds.iter().map(|p| p.revents).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn names_are_checked_as_linux_would_take_them() {
        for ok in ["tap0", "tap100", "a", "fifteen_bytes_x"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "sixteen_bytes_xx", "a/b", "a b", "a:1", ".", "..", "tab\t"] {
            assert!(matches!(check_name(bad), Err(TapError::BadName(n)) if n == bad), "{bad}");
        }
    }

    #[test]
    fn a_missing_interface_is_refused_by_name() {
        // No interface of this name exists (names are at most 15 bytes,
        // and this one is made up here).
        let e = Tap::open("nosuchtap9q7").unwrap_err();
        assert!(matches!(&e, TapError::Missing(n) if n == "nosuchtap9q7"), "{e}");
        assert!(e.to_string().contains("no network interface 'nosuchtap9q7'"), "{e}");
        let e = Tap::open("bad/name").unwrap_err();
        assert!(matches!(e, TapError::BadName(_)), "{e}");
    }

    /// A descriptor without close-on-exec, as a caller would pass one.
    fn inheritable(f: &File) -> i32 {
        // SAFETY: dup() of an open descriptor; the copy is closed by the
        // test that asked for it.
        let fd = unsafe { libc::dup(f.as_raw_fd()) };
        assert!(fd >= 0);
        fd
    }

    fn is_open(fd: i32) -> bool {
        fcntl(fd, libc::F_GETFD, 0).is_ok()
    }

    #[test]
    fn inherited_descriptors_parse_as_solo5_spt_takes_them() {
        assert_eq!(TapSource::parse("@5").unwrap(), TapSource::Fd(5));
        assert_eq!(TapSource::parse("@2147483647").unwrap(), TapSource::Fd(i32::MAX));
        assert_eq!(TapSource::parse("tap0").unwrap(), TapSource::Name("tap0".into()));
        for bad in ["@", "@-1", "@+1", "@1x", "@2147483648", "@ 1", "@@1"] {
            assert!(matches!(TapSource::parse(bad), Err(TapError::BadName(n)) if n == bad), "{bad}");
        }
    }

    #[test]
    fn only_an_inherited_tap_descriptor_is_taken_and_others_stay_open() {
        let e = attach("@999999").unwrap_err();
        assert!(matches!(e, TapError::FdNotOpen(999_999)), "{e}");
        assert_eq!(e.to_string(), "descriptor 999999 (from @999999) is not open");
        // The VMM's own descriptors are close-on-exec: never taken.
        let own = File::open("/dev/null").unwrap();
        let e = Tap::inherit(own.as_raw_fd()).unwrap_err();
        assert!(matches!(e, TapError::FdNotInherited(fd) if fd == own.as_raw_fd()), "{e}");
        assert!(is_open(own.as_raw_fd()));
        // An inherited file that is not a tap: refused, left open.
        let fd = inheritable(&own);
        let e = Tap::inherit(fd).unwrap_err();
        assert!(matches!(e, TapError::FdNotTap(f) if f == fd), "{e}");
        assert!(e.to_string().ends_with("is not an attached tap interface"), "{e}");
        assert!(is_open(fd));
        // SAFETY: `fd` is the test's own copy, closed once.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
        // A tun queue not attached to any interface: not a tap either.
        if let Ok(tun) = File::options().read(true).write(true).open("/dev/net/tun") {
            let fd = inheritable(&tun);
            assert!(matches!(Tap::inherit(fd), Err(TapError::FdNotTap(f)) if f == fd));
            assert!(is_open(fd));
            // SAFETY: as above.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }

    #[test]
    fn poll_reports_only_the_ready_one_and_waits_no_longer_than_asked() {
        let (a, b) = UnixDatagram::pair().unwrap();
        let (c, _d) = UnixDatagram::pair().unwrap();
        let (fa, fc) = (File::from(OwnedFd::from(a)), File::from(OwnedFd::from(c)));
        let t = std::time::Instant::now();
        assert_eq!(poll_readable(&[&fa, &fc], Duration::from_millis(20)).unwrap(), vec![0, 0]);
        assert!(t.elapsed() >= Duration::from_millis(20));
        let mut fb = File::from(OwnedFd::from(b));
        fb.write_all(b"frame").unwrap();
        let r = poll_readable(&[&fa, &fc], Duration::from_secs(5)).unwrap();
        assert!(r[0] & libc::POLLIN != 0 && r[1] == 0, "{r:?}");
    }
}
