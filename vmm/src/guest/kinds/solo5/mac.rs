//! The network options of a Solo5 unikernel as `solo5-spt` spells them
//! (`--net:NAME=TAP`, `--net-mac:NAME=MAC`) and the hardware address
//! newtype they carry ([`Mac`]), parsed, or made up as `solo5-spt` makes
//! one up for a device given none.
//!
//! What this module does not do: open anything (that is `tap.rs`).

use std::fmt;
use std::str::FromStr;

use super::note::NAME_MAX;
use super::tap;

/// An Ethernet hardware address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl FromStr for Mac {
    type Err = String;

    /// Six groups of one or two hex digits separated by `:`, as
    /// `solo5-spt` reads `--net-mac` (`02:00:00:00:00:01`).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not a MAC address (six hex bytes separated by ':', e.g. 02:00:00:00:00:01)");
        let mut mac = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut mac {
            let p = parts.next().ok_or_else(bad)?;
            if p.is_empty() || p.len() > 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Mac(mac))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl Mac {
    /// A random, locally administered unicast address, as `solo5-spt`
    /// gives a device `--net-mac` does not name.
    pub fn generate() -> Mac {
        let mut m = [0u8; 6];
        // SAFETY: `m` is a writable buffer of `m.len()` bytes; getrandom
        // writes at most that many into it.
        let n = unsafe { libc::getrandom(m.as_mut_ptr().cast(), m.len(), 0) };
        if n != m.len() as isize {
            // No entropy source: distinct enough for one host's taps.
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let seed = t.as_nanos() as u64 ^ u64::from(std::process::id()) << 20;
            m.copy_from_slice(&seed.to_le_bytes()[..6]);
        }
        m[0] = (m[0] & 0xfe) | 0x02;
        Mac(m)
    }
}

/// Splits `NAME=VALUE`, checking the name as a manifest entry's.
fn split_named(s: &str, what: &str) -> Result<(String, String), String> {
    let Some((name, value)) = s.split_once('=') else {
        return Err(format!("'{s}': expected NAME={what}"));
    };
    if name.is_empty() || name.len() > NAME_MAX || !name.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!("network device name '{name}': it must be 1 to {NAME_MAX} ASCII letters and digits"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// Parses `--net NAME=TAP` or `--net NAME=@FD`.
pub fn parse_net(s: &str) -> Result<(String, String), String> {
    let (name, tap_name) = split_named(s, "TAP")?;
    tap::TapSource::parse(&tap_name).map_err(|e| format!("'{s}': {e}"))?;
    Ok((name, tap_name))
}

/// Parses `--net-mac NAME=MAC`.
pub fn parse_net_mac(s: &str) -> Result<(String, Mac), String> {
    let (name, mac) = split_named(s, "MAC")?;
    Ok((name, mac.parse()?))
}

/// [`parse_net`] as an option check.
pub fn check_net(s: &str) -> Result<(), String> {
    parse_net(s).map(|_| ())
}

/// [`parse_net_mac`] as an option check.
pub fn check_net_mac(s: &str) -> Result<(), String> {
    parse_net_mac(s).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_as_solo5_spt_reads_them_and_print_back() {
        let m: Mac = "02:00:0a:Bc:1:ff".parse().unwrap();
        assert_eq!(m, Mac([2, 0, 0x0a, 0xbc, 1, 0xff]));
        assert_eq!(m.to_string(), "02:00:0a:bc:01:ff");
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:01:02",
            "02:00:00:00:00:",
            "020:00:00:00:00:01",
            "g2:00:00:00:00:01",
            "02-00-00-00-00-01",
            "+2:00:00:00:00:01",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }

    #[test]
    fn generated_macs_are_local_unicast_and_differ() {
        let a = Mac::generate();
        let b = Mac::generate();
        for m in [a, b] {
            assert_eq!(m.0[0] & 0x03, 0x02, "{m}");
        }
        assert_ne!(a, b);
    }

    #[test]
    fn options_check_the_device_and_the_interface_name() {
        assert_eq!(parse_net("service0=tap100").unwrap(), ("service0".into(), "tap100".into()));
        assert!(parse_net("service0").unwrap_err().contains("expected NAME=TAP"));
        assert!(parse_net("bad-name=tap0").unwrap_err().contains("network device name 'bad-name'"));
        assert!(parse_net("service0=").is_err() && parse_net("service0=a/b").is_err());
        assert!(parse_net("service0=sixteen_bytes_xx").is_err());
        assert_eq!(parse_net("service0=@5").unwrap(), ("service0".into(), "@5".into()));
        for bad in
            ["service0=@", "service0=@-1", "service0=@+3", "service0=@5x", "service0=@ 5", "service0=@2147483648"]
        {
            assert!(parse_net(bad).unwrap_err().contains("is not an interface name"), "{bad}");
        }
        assert_eq!(parse_net_mac("service0=02:00:00:00:00:01").unwrap().1, Mac([2, 0, 0, 0, 0, 1]));
        assert!(parse_net_mac("service0=nope").unwrap_err().contains("not a MAC address"));
        assert!(parse_net_mac("=02:00:00:00:00:01").is_err());
    }
}
