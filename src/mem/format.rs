//! The image file: the memory regions of a process, then a header that
//! says what they are and what they need, then a fixed trailer.
//!
//! ```text
//! [region 0 bytes][region 1 bytes]...   page-aligned, in header order
//! [header]                              encoded fields (below), hashed
//! [trailer: magic, version, header offset, header length, header hash]
//! ```
//!
//! Everything is checked before a byte of the image is put into memory:
//! the trailer (a truncated file has none), the header's hash, each
//! region's hash, the binary (a hash of the executable and of libferry) and
//! the address layout of the loaded objects. A file that fails any check is
//! refused with the reason; nothing is jumped into.
//!
//! Pure encoding and decoding, unit-tested without MPI.
use super::files::serde_like::Record;
use xxhash_rust::xxh3::xxh3_64;

pub const MAGIC: &[u8; 8] = b"FERRYIMG";
pub const VERSION: u32 = 2;
pub const TRAILER_BYTES: usize = 8 + 4 + 4 + 8 + 8 + 8;

/// What a region is (for the report and the checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    ProgramHeap = 1,
    ProgramStack = 2,
    ProgramData = 3,
    LibraryData = 4,
    LibraryHeap = 5,
    Tls = 6,
}

impl Kind {
    pub fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::ProgramHeap,
            2 => Kind::ProgramStack,
            3 => Kind::ProgramData,
            4 => Kind::LibraryData,
            5 => Kind::LibraryHeap,
            6 => Kind::Tls,
            _ => return None,
        })
    }
}

/// One memory region of the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    pub addr: u64,
    pub len: u64,
    /// Where its bytes start in the file.
    pub offset: u64,
    pub hash: u64,
    pub kind: Kind,
}

/// A loaded object and where it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    pub name: String,
    pub base: u64,
    /// Its address must be the same in the new process.
    pub pinned: bool,
    /// The program opened it with `dlopen`: the new process opens it
    /// again, at the same place, before the image is checked.
    pub reopen: Option<Reopen>,
}

/// How an object the program opened is opened again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reopen {
    /// The `dlopen` flags the program gave.
    pub flags: i32,
    /// The addresses its loadable segments spanned.
    pub start: u64,
    pub end: u64,
}

/// The header of an image.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Header {
    pub world_rank: i32,
    pub world_size: i32,
    pub pid: u32,
    pub host: String,
    pub exe_path: String,
    pub exe_hash: u64,
    pub ferry_path: String,
    pub ferry_hash: u64,
    pub objects: Vec<Loaded>,
    pub thread_level: i32,
    pub canary: u64,
    /// The saved `ucontext_t`, bytes.
    pub context: Vec<u8>,
    pub files: Vec<Record>,
    /// Signal dispositions the program set before `MPI_Init`: (signal,
    /// bytes of its `sigaction`), installed again before `MPI_Init`.
    pub signals: Vec<(i32, Vec<u8>)>,
    pub regions: Vec<Region>,
    pub created_unix_ms: u64,
}

#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

/// Why an image cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Invalid> {
        if self.b.len() - self.at < n {
            return Err(Invalid("the image header is cut short (corrupt)".into()));
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, Invalid> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, Invalid> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn i32(&mut self) -> Result<i32, Invalid> {
        Ok(i32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, Invalid> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn i64(&mut self) -> Result<i64, Invalid> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn count(&mut self) -> Result<usize, Invalid> {
        let n = self.u64()?;
        if n > (self.b.len() - self.at) as u64 {
            return Err(Invalid(
                "an image header count is out of range (corrupt)".into(),
            ));
        }
        Ok(n as usize)
    }
    fn bytes(&mut self) -> Result<Vec<u8>, Invalid> {
        let n = self.count()?;
        Ok(self.take(n)?.to_vec())
    }
    fn str(&mut self) -> Result<String, Invalid> {
        String::from_utf8(self.bytes()?)
            .map_err(|_| Invalid("a string of the image header is not UTF-8 (corrupt)".into()))
    }
}

impl Header {
    /// The encoded header.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.i32(self.world_rank);
        w.i32(self.world_size);
        w.u32(self.pid);
        w.str(&self.host);
        w.str(&self.exe_path);
        w.u64(self.exe_hash);
        w.str(&self.ferry_path);
        w.u64(self.ferry_hash);
        w.u64(self.objects.len() as u64);
        for o in &self.objects {
            w.str(&o.name);
            w.u64(o.base);
            w.u8(o.pinned as u8);
            match o.reopen {
                None => w.u8(0),
                Some(r) => {
                    w.u8(1);
                    w.i32(r.flags);
                    w.u64(r.start);
                    w.u64(r.end);
                }
            }
        }
        w.i32(self.thread_level);
        w.u64(self.canary);
        w.bytes(&self.context);
        w.u64(self.files.len() as u64);
        for f in &self.files {
            w.i32(f.fd);
            w.str(&f.path);
            w.i32(f.flags);
            w.i32(f.fd_flags);
            w.i64(f.offset);
            w.u64(f.dev);
            w.u64(f.ino);
        }
        w.u64(self.signals.len() as u64);
        for (signo, b) in &self.signals {
            w.i32(*signo);
            w.bytes(b);
        }
        w.u64(self.regions.len() as u64);
        for r in &self.regions {
            w.u64(r.addr);
            w.u64(r.len);
            w.u64(r.offset);
            w.u64(r.hash);
            w.u8(r.kind as u8);
        }
        w.u64(self.created_unix_ms);
        w.0
    }

    /// Decodes a header.
    pub fn decode(b: &[u8]) -> Result<Header, Invalid> {
        let mut r = Reader { b, at: 0 };
        let mut h = Header {
            world_rank: r.i32()?,
            world_size: r.i32()?,
            pid: r.u32()?,
            host: r.str()?,
            exe_path: r.str()?,
            exe_hash: r.u64()?,
            ferry_path: r.str()?,
            ferry_hash: r.u64()?,
            ..Header::default()
        };
        for _ in 0..r.count()? {
            let (name, base, pinned) = (r.str()?, r.u64()?, r.u8()? != 0);
            let reopen = match r.u8()? {
                0 => None,
                _ => Some(Reopen {
                    flags: r.i32()?,
                    start: r.u64()?,
                    end: r.u64()?,
                }),
            };
            h.objects.push(Loaded {
                name,
                base,
                pinned,
                reopen,
            });
        }
        h.thread_level = r.i32()?;
        h.canary = r.u64()?;
        h.context = r.bytes()?;
        for _ in 0..r.count()? {
            h.files.push(Record {
                fd: r.i32()?,
                path: r.str()?,
                flags: r.i32()?,
                fd_flags: r.i32()?,
                offset: r.i64()?,
                dev: r.u64()?,
                ino: r.u64()?,
            });
        }
        for _ in 0..r.count()? {
            h.signals.push((r.i32()?, r.bytes()?));
        }
        for _ in 0..r.count()? {
            let addr = r.u64()?;
            let len = r.u64()?;
            let offset = r.u64()?;
            let hash = r.u64()?;
            let kind = Kind::from_u8(r.u8()?).ok_or_else(|| {
                Invalid("unknown region kind in the image header (corrupt)".into())
            })?;
            h.regions.push(Region {
                addr,
                len,
                offset,
                hash,
                kind,
            });
        }
        h.created_unix_ms = r.u64()?;
        if r.at != b.len() {
            return Err(Invalid(
                "the image header has trailing bytes (corrupt)".into(),
            ));
        }
        Ok(h)
    }

    /// Bytes of memory the image holds.
    pub fn image_bytes(&self) -> u64 {
        self.regions.iter().map(|r| r.len).sum()
    }
}

/// The trailer for a header written at `offset`.
pub fn trailer(offset: u64, header: &[u8]) -> Vec<u8> {
    let mut w = Writer::default();
    w.0.extend_from_slice(MAGIC);
    w.u32(VERSION);
    w.u32(0);
    w.u64(offset);
    w.u64(header.len() as u64);
    w.u64(xxh3_64(header));
    debug_assert_eq!(w.0.len(), TRAILER_BYTES);
    w.0
}

/// Reads the header of a whole image file held in `file` (checking the
/// trailer, the header hash and that every region lies inside the file).
pub fn read_header(file: &[u8]) -> Result<Header, Invalid> {
    if file.len() < TRAILER_BYTES {
        return Err(Invalid(format!(
            "the image is truncated ({} bytes, no trailer)",
            file.len()
        )));
    }
    let t = &file[file.len() - TRAILER_BYTES..];
    if &t[..8] != MAGIC {
        return Err(Invalid(
            "not a ferry image, or truncated (no trailer at its end)".into(),
        ));
    }
    let mut r = Reader { b: &t[8..], at: 0 };
    let version = r.u32()?;
    if version != VERSION {
        return Err(Invalid(format!(
            "image format version {version}, this ferry reads version {VERSION}"
        )));
    }
    r.u32()?;
    let offset = r.u64()? as usize;
    let len = r.u64()? as usize;
    let hash = r.u64()?;
    let end = file.len() - TRAILER_BYTES;
    if offset > end || len != end - offset {
        return Err(Invalid(
            "the image's header is not where its trailer says (corrupt or truncated)".into(),
        ));
    }
    let hb = &file[offset..end];
    if xxh3_64(hb) != hash {
        return Err(Invalid(
            "the image header's checksum does not match (corrupt)".into(),
        ));
    }
    let h = Header::decode(hb)?;
    for r in &h.regions {
        if r.offset
            .checked_add(r.len)
            .is_none_or(|e| e > offset as u64)
        {
            return Err(Invalid(format!(
                "region at {:#x} lies outside the image's data (corrupt)",
                r.addr
            )));
        }
    }
    Ok(h)
}

/// Checks every region's bytes against its hash.
pub fn verify_regions(file: &[u8], h: &Header) -> Result<(), Invalid> {
    for r in &h.regions {
        let bytes = &file[r.offset as usize..(r.offset + r.len) as usize];
        if xxh3_64(bytes) != r.hash {
            return Err(Invalid(format!(
                "the image is corrupt: the checksum of its region at {:#x} ({} bytes, {:?}) does not match",
                r.addr, r.len, r.kind
            )));
        }
    }
    Ok(())
}

/// Checks that the image was made by the same binary, library and layout
/// as this process has.
pub fn check_identity(h: &Header, now: &Header) -> Result<(), Invalid> {
    if h.exe_hash != now.exe_hash {
        return Err(Invalid(format!(
            "the image is of another binary: {} has changed since the checkpoint (or this is a foreign image)",
            h.exe_path
        )));
    }
    if h.ferry_hash != now.ferry_hash {
        return Err(Invalid(format!(
            "the image was made by another build of libferry ({}); restart with the same one",
            h.ferry_path
        )));
    }
    for o in h.objects.iter().filter(|o| o.pinned) {
        match now.objects.iter().find(|n| n.name == o.name) {
            Some(n) if n.base == o.base => {}
            Some(n) => {
                return Err(Invalid(format!(
                    "the address layout differs: {} is at {:#x}, the image needs {:#x}",
                    display_name(&o.name),
                    n.base,
                    o.base
                )))
            }
            None => {
                return Err(Invalid(format!(
                    "the address layout differs: {} is not loaded in this process",
                    display_name(&o.name)
                )))
            }
        }
    }
    Ok(())
}

fn display_name(n: &str) -> &str {
    if n.is_empty() {
        "the executable"
    } else {
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            world_rank: 3,
            world_size: 4,
            pid: 77,
            host: "h".into(),
            exe_path: "/bin/prog".into(),
            exe_hash: 1,
            ferry_path: "/lib/libferry.so".into(),
            ferry_hash: 2,
            objects: vec![
                Loaded {
                    name: "".into(),
                    base: 0x5555_5555_4000,
                    pinned: true,
                    reopen: None,
                },
                Loaded {
                    name: "/lib/x.so".into(),
                    base: 0x7fff_0000_0000,
                    pinned: false,
                    reopen: None,
                },
                Loaded {
                    name: "/opt/app/libplug.so".into(),
                    base: 0x7ffe_0000_0000,
                    pinned: true,
                    reopen: Some(Reopen {
                        flags: 0x102,
                        start: 0x7ffe_0000_0000,
                        end: 0x7ffe_0001_0000,
                    }),
                },
            ],
            thread_level: 0,
            canary: 0xdead_beef,
            context: vec![1, 2, 3],
            files: vec![Record {
                fd: 3,
                path: "/tmp/f".into(),
                flags: 1025,
                fd_flags: 0,
                offset: 99,
                dev: 5,
                ino: 6,
            }],
            signals: vec![(10, vec![1, 2, 3, 4])],
            regions: vec![Region {
                addr: 0x2000_0000_0000,
                len: 8,
                offset: 0,
                hash: xxh3_64(b"abcdefgh"),
                kind: Kind::ProgramHeap,
            }],
            created_unix_ms: 12345,
        }
    }

    fn file_of(h: &Header, data: &[u8]) -> Vec<u8> {
        let mut f = data.to_vec();
        let hb = h.encode();
        let off = f.len() as u64;
        f.extend_from_slice(&hb);
        f.extend_from_slice(&trailer(off, &hb));
        f
    }

    #[test]
    fn round_trip() {
        let h = sample();
        assert_eq!(Header::decode(&h.encode()).unwrap(), h);
        let f = file_of(&h, b"abcdefgh");
        let back = read_header(&f).unwrap();
        assert_eq!(back, h);
        verify_regions(&f, &back).unwrap();
        assert_eq!(back.image_bytes(), 8);
    }

    #[test]
    fn corrupt_data_is_refused() {
        let h = sample();
        let mut f = file_of(&h, b"abcdefgh");
        f[3] ^= 0xff;
        let back = read_header(&f).unwrap();
        let e = verify_regions(&f, &back).unwrap_err();
        assert!(e.0.contains("corrupt"), "{e}");
    }

    #[test]
    fn corrupt_header_is_refused() {
        let h = sample();
        let mut f = file_of(&h, b"abcdefgh");
        f[10] ^= 1;
        assert!(read_header(&f).unwrap_err().0.contains("checksum"));
    }

    #[test]
    fn truncated_is_refused() {
        let h = sample();
        let f = file_of(&h, b"abcdefgh");
        for n in [0, 5, f.len() / 2, f.len() - 1] {
            let e = read_header(&f[..n]).unwrap_err();
            assert!(
                e.0.contains("truncated") || e.0.contains("corrupt"),
                "{n}: {e}"
            );
        }
    }

    #[test]
    fn garbage_is_refused() {
        let e = read_header(&[7u8; 100]).unwrap_err();
        assert!(e.0.contains("not a ferry image"), "{e}");
        // A header that decodes to nonsense counts is refused, not trusted.
        assert!(Header::decode(&[0xff; 64]).is_err());
    }

    #[test]
    fn identity_checks() {
        let h = sample();
        let mut now = sample();
        check_identity(&h, &now).unwrap();
        now.objects[1].base += 4096; // not pinned: fine
        check_identity(&h, &now).unwrap();
        now.objects[0].base += 4096;
        assert!(check_identity(&h, &now).unwrap_err().0.contains("layout"));
        let mut other = sample();
        other.exe_hash = 9;
        assert!(check_identity(&h, &other)
            .unwrap_err()
            .0
            .contains("another binary"));
        let mut lib = sample();
        lib.ferry_hash = 9;
        assert!(check_identity(&h, &lib).unwrap_err().0.contains("libferry"));
    }
}
