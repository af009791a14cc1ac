//! Address reservations shared by the drivers: a range of IPv4 addresses, each reserved by a
//! file `<dir>/<address>` created exclusively with its owner's id in it, so reservations are
//! unique across processes, survive restarts, and a crash never leaves one half-written (the
//! file appears whole or not at all).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// An inclusive range of addresses handed out from one directory.
#[derive(Debug, Clone)]
pub struct AddressPool {
    dir: PathBuf,
    first: u32,
    last: u32,
    /// Addresses inside the range that are never handed out (a gateway, a controller).
    excluded: Vec<Ipv4Addr>,
}

impl AddressPool {
    pub fn new(dir: &Path, first: Ipv4Addr, last: Ipv4Addr) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(AddressPool {
            dir: dir.to_path_buf(),
            first: first.into(),
            last: last.into(),
            excluded: Vec::new(),
        })
    }

    /// The usable hosts of `net` (neither network nor broadcast address), without `excluded`.
    pub fn of_subnet(
        dir: &Path,
        net: ipnet::Ipv4Net,
        excluded: Vec<Ipv4Addr>,
    ) -> std::io::Result<Self> {
        let mut hosts = net.hosts();
        let first = hosts.next().unwrap_or(net.network());
        let last = hosts.next_back().unwrap_or(first);
        Ok(AddressPool {
            excluded,
            ..AddressPool::new(dir, first, last)?
        })
    }

    /// Whether `ip` may be handed out by this pool.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&u32::from(ip)) && !self.excluded.contains(&ip)
    }

    fn path(&self, ip: Ipv4Addr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    /// Reserves `ip` for `owner`: `true` when it is now `owner`'s (newly, or already: a retried
    /// allocation is idempotent), `false` when someone else holds it.
    pub fn reserve(&self, ip: Ipv4Addr, owner: &str) -> std::io::Result<bool> {
        let path = self.path(ip);
        if rocta_service::fs::create_exclusive(&path, owner.as_bytes(), 0o644)? {
            return Ok(true);
        }
        Ok(std::fs::read_to_string(&path).is_ok_and(|o| o == owner))
    }

    /// Reserves a free address for `owner`, probing from a point derived from `seed` (O(1) on
    /// a sparse range); `None` when the range is full. An address `owner` already holds comes
    /// back first only if it is the one probed first: callers that must get the same address
    /// again look it up with [`AddressPool::owned_by`].
    pub fn reserve_any(&self, owner: &str, seed: u128) -> std::io::Result<Option<Ipv4Addr>> {
        let size = u64::from(self.last - self.first) + 1;
        let start = (seed % u128::from(size)) as u64;
        for k in 0..size {
            let ip = Ipv4Addr::from(self.first + ((start + k) % size) as u32);
            if self.contains(ip) && self.reserve(ip, owner)? {
                return Ok(Some(ip));
            }
        }
        Ok(None)
    }

    /// The addresses `owner` holds.
    pub fn owned_by(&self, owner: &str) -> std::io::Result<Vec<Ipv4Addr>> {
        let mut v = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let Some(ip) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            if std::fs::read_to_string(&path).is_ok_and(|o| o == owner) {
                v.push(ip);
            }
        }
        v.sort_unstable();
        Ok(v)
    }

    /// Releases `ip`. Idempotent.
    pub fn release(&self, ip: Ipv4Addr) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(ip)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Releases everything `owner` holds. Idempotent.
    pub fn release_owned_by(&self, owner: &str) -> std::io::Result<()> {
        for ip in self.owned_by(owner)? {
            self.release(ip)?;
        }
        Ok(())
    }
}

/// Allocates the VIP address `req` asks for (its address, or any) from `pool` (`subnet` names
/// it in refusals, with Neutron's messages).
pub(crate) fn allocate_vip(
    pool: &AddressPool,
    req: &crate::VipRequest,
    subnet: &str,
) -> Result<Ipv4Addr, crate::VipError> {
    use crate::{DriverError, VipError};
    let io =
        |e: std::io::Error| VipError::Driver(DriverError::transient("allocate vip", e.to_string()));
    let owner = req.lb_id.to_string();
    match &req.address {
        Some(a) => {
            let ip = a
                .parse::<Ipv4Addr>()
                .ok()
                .filter(|ip| pool.contains(*ip))
                .ok_or_else(|| {
                    VipError::Invalid(format!("IP address {a} is not in subnet {subnet}."))
                })?;
            if !pool.reserve(ip, &owner).map_err(io)? {
                return Err(VipError::Invalid(format!(
                    "IP address {a} is already allocated in subnet {subnet}."
                )));
            }
            Ok(ip)
        }
        None => pool
            .reserve_any(&owner, req.lb_id.as_u128())
            .map_err(io)?
            .ok_or_else(|| {
                VipError::Invalid(format!(
                    "No more IP addresses available on subnet {subnet}."
                ))
            }),
    }
}

/// Releases a VIP's address. Idempotent.
pub(crate) fn release_vip(pool: &AddressPool, vip: &crate::Vip) -> crate::DriverResult<()> {
    match vip.address.parse::<Ipv4Addr>() {
        Ok(ip) => pool
            .release(ip)
            .map_err(|e| crate::DriverError::transient("deallocate vip", e.to_string())),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_unique_idempotent_and_released() {
        let d = tempfile::tempdir().unwrap();
        let net: ipnet::Ipv4Net = "198.18.5.0/29".parse().unwrap();
        let gw: Ipv4Addr = "198.18.5.1".parse().unwrap();
        let p = AddressPool::of_subnet(d.path(), net, vec![gw]).unwrap();
        assert!(!p.contains(gw) && !p.contains("198.18.5.7".parse().unwrap()));
        assert!(!p.contains("198.18.5.0".parse().unwrap()));
        let mut got = Vec::new();
        for i in 0..5 {
            got.push(p.reserve_any(&format!("o{i}"), 3).unwrap().unwrap());
        }
        got.sort_unstable();
        let want: Vec<Ipv4Addr> = (2..=6).map(|h| Ipv4Addr::new(198, 18, 5, h)).collect();
        assert_eq!(got, want, "every host but the gateway, once each");
        assert_eq!(p.reserve_any("o9", 0).unwrap(), None, "full");
        let of_o1 = p.owned_by("o1").unwrap();
        assert_eq!(of_o1.len(), 1);
        assert!(
            p.reserve(of_o1[0], "o1").unwrap(),
            "the owner again: idempotent"
        );
        assert!(!p.reserve(of_o1[0], "o2").unwrap(), "someone else: refused");
        p.release_owned_by("o1").unwrap();
        p.release_owned_by("o1").unwrap();
        assert_eq!(p.reserve_any("o9", 0).unwrap(), Some(of_o1[0]));
    }
}
