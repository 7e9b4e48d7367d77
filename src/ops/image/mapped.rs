//! An image in memory: a read-only mapping of its file (a restart), or
//! anonymous memory its pieces are received into (a replacement, through
//! [`super::stream`]). The restore reads it in place.
use std::ffi::c_void;

/// An image in memory: a read-only mapping of its file, or the pieces
/// received from the migrating process.
pub struct Mapped {
    pub(super) base: *mut u8,
    pub(super) len: usize,
    /// Bytes mapped (at least `len`).
    cap: usize,
    /// Anonymous memory of this process (an image received), whose pages
    /// may be moved into place; not a mapped file.
    pub(super) anonymous: bool,
}

impl Mapped {
    /// Reserves `cap` bytes of anonymous memory (nothing is committed
    /// until it is written) for an image that arrives in pieces.
    pub fn reserve(cap: usize) -> Result<Mapped, String> {
        // SAFETY: a fresh anonymous mapping at an address of the kernel's
        // choosing.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                cap,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(format!(
                "cannot reserve {} GiB for the image: {}",
                cap >> 30,
                std::io::Error::last_os_error()
            ));
        }
        // Every byte received is written once, in large pieces: huge pages
        // where the kernel allows them on request ("madvise" mode), a fault
        // per 2 MiB instead of per 4 KiB. Only a hint: failure is harmless.
        // SAFETY: advice on the mapping just made.
        unsafe { libc::madvise(p, cap, libc::MADV_HUGEPAGE) };
        Ok(Mapped {
            base: p as *mut u8,
            len: 0,
            cap,
            anonymous: true,
        })
    }

    /// Where the piece `[at, at+len)` of the image goes, if it fits.
    pub fn piece(&mut self, at: u64, len: u64) -> Option<*mut u8> {
        let end = at.checked_add(len)?;
        if end > self.cap as u64 {
            return None;
        }
        // SAFETY: inside the mapping (checked).
        Some(unsafe { self.base.add(at as usize) })
    }

    /// The image is complete at `len` bytes.
    pub fn complete(&mut self, len: u64) -> bool {
        if len > self.cap as u64 {
            return false;
        }
        self.len = len as usize;
        true
    }

    pub(super) fn open(path: &std::path::Path) -> Result<Mapped, String> {
        let f = std::fs::File::open(path).map_err(|e| format!("cannot open the image: {e}"))?;
        let len = f.metadata().map_err(|e| e.to_string())?.len() as usize;
        if len == 0 {
            return Err("the image is empty (truncated)".into());
        }
        use std::os::fd::AsRawFd;
        // SAFETY: a private read-only mapping of a file we opened.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_POPULATE,
                f.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(format!(
                "cannot map the image: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(Mapped {
            base: p as *mut u8,
            len,
            cap: len,
            anonymous: false,
        })
    }

    pub(super) fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping, alive as long as self.
        unsafe { std::slice::from_raw_parts(self.base, self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: our mapping.
        unsafe { libc::munmap(self.base as *mut c_void, self.cap) };
    }
}
