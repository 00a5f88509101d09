//! Reading another process's memory: a `Memory` trait, the live `ProcessMemory`
//! (`process_vm_readv`), and, for tests, `FixtureMemory` (byte regions at addresses).

use super::FramesError;

/// A source of a process's memory.
pub trait Memory: Send + Sync {
    /// Fills `buf` from `address`, all of it or an error.
    fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), FramesError>;

    fn read_u64(&self, address: u64) -> Result<u64, FramesError> {
        let mut bytes = [0u8; 8];
        self.read(address, &mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn read_u32(&self, address: u64) -> Result<u32, FramesError> {
        let mut bytes = [0u8; 4];
        self.read(address, &mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    /// Reads `out.len() / addresses.len()` bytes at each address into consecutive pieces of
    /// `out`; whether each read succeeded.
    fn read_many(&self, addresses: &[u64], out: &mut [u8]) -> Vec<bool> {
        let len = out.len().checked_div(addresses.len()).unwrap_or(0);
        addresses
            .iter()
            .zip(out.chunks_exact_mut(len.max(1)))
            .map(|(&a, piece)| self.read(a, piece).is_ok())
            .collect()
    }
}

/// Remote iovecs per `process_vm_readv` (the kernel's `IOV_MAX`).
const IOV_MAX: usize = 1024;

/// A live process, read with `process_vm_readv` (needs ptrace access: root, or the owner).
#[derive(Clone, Copy, Debug)]
pub struct ProcessMemory {
    pub pid: i32,
}

impl Memory for ProcessMemory {
    fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), FramesError> {
        let len = buf.len();
        let bad = || FramesError::Read { address, len };
        if buf.is_empty() {
            return Ok(());
        }
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let remote = libc::iovec {
            iov_base: usize::try_from(address).map_err(|_| bad())? as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: `local` describes `buf`, which is writable for its length for the whole call;
        // the remote iovec is only an address in the other process, checked by the kernel.
        let n = unsafe { libc::process_vm_readv(self.pid, &local, 1, &remote, 1, 0) };
        if usize::try_from(n).ok() == Some(buf.len()) {
            Ok(())
        } else {
            Err(bad())
        }
    }

    fn read_many(&self, addresses: &[u64], out: &mut [u8]) -> Vec<bool> {
        let mut ok = vec![false; addresses.len()];
        let Some(len) = out.len().checked_div(addresses.len()).filter(|l| *l > 0) else {
            return ok;
        };
        let mut at = 0;
        while at < addresses.len() {
            let end = (at + IOV_MAX).min(addresses.len());
            let whole = self.read_batch(&addresses[at..end], &mut out[at * len..end * len], len);
            ok[at..at + whole].fill(true);
            // The piece after the whole ones failed: skip it.
            at += whole + usize::from(at + whole < end);
        }
        ok
    }
}

impl ProcessMemory {
    /// One `process_vm_readv` for up to `IOV_MAX` pieces; the number read whole from the
    /// front (the kernel stops at the first piece it cannot read).
    fn read_batch(&self, addresses: &[u64], out: &mut [u8], len: usize) -> usize {
        let mut local = Vec::with_capacity(addresses.len());
        let mut remote = Vec::with_capacity(addresses.len());
        for (&address, piece) in addresses.iter().zip(out.chunks_exact_mut(len)) {
            local.push(libc::iovec {
                iov_base: piece.as_mut_ptr().cast(),
                iov_len: len,
            });
            remote.push(libc::iovec {
                iov_base: address as usize as *mut libc::c_void,
                iov_len: len,
            });
        }
        // SAFETY: each local iovec describes a distinct piece of `out`, writable for the
        // whole call; the remote ones are only addresses in the other process, checked by
        // the kernel.
        let n = unsafe {
            libc::process_vm_readv(
                self.pid,
                local.as_ptr(),
                local.len() as libc::c_ulong,
                remote.as_ptr(),
                remote.len() as libc::c_ulong,
                0,
            )
        };
        usize::try_from(n).map_or(0, |n| n / len)
    }
}

/// Memory made of byte regions at chosen addresses, for offline tests.
#[cfg(test)]
#[derive(Default)]
pub struct FixtureMemory {
    regions: Vec<(u64, Vec<u8>)>,
}

#[cfg(test)]
impl FixtureMemory {
    pub fn put(&mut self, address: u64, bytes: Vec<u8>) {
        self.regions.push((address, bytes));
    }
}

#[cfg(test)]
impl Memory for FixtureMemory {
    fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), FramesError> {
        for (start, bytes) in &self.regions {
            let Some(from) = address.checked_sub(*start) else {
                continue;
            };
            let Ok(from) = usize::try_from(from) else {
                continue;
            };
            if let Some(src) = bytes.get(from..from + buf.len()) {
                buf.copy_from_slice(src);
                return Ok(());
            }
        }
        Err(FramesError::Read {
            address,
            len: buf.len(),
        })
    }
}

/// A live process whose reads are kept, to record a fixture of what a reader needed.
#[cfg(test)]
pub struct RecordingMemory {
    pub inner: ProcessMemory,
    pub reads: std::sync::Mutex<Vec<(u64, Vec<u8>)>>,
}

#[cfg(test)]
impl Memory for RecordingMemory {
    fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), FramesError> {
        self.inner.read(address, buf)?;
        if let Ok(mut reads) = self.reads.lock() {
            reads.push((address, buf.to_vec()));
        }
        Ok(())
    }
}
