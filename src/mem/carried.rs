//! What an image of this process carries of its loaded objects, decided
//! now: the program's closure ([`crate::mem::closure`], with libferry's
//! dlopen records saying who opened what), short of the libraries whose
//! writable data points into memory a new process would not have the same.
use super::closure::{sides_with, Side};
use super::elf::Object;

/// The loaded objects of this process with their sides (libferry's dlopen
/// records say who opened what).
pub fn sides(objs: &[Object]) -> Vec<Option<Side>> {
    sides_with(objs, super::opened::opener_of)
}

/// What an image of this process carries of its loaded objects, and why
/// it cannot.
pub struct Plan {
    pub sides: Vec<Option<Side>>,
    /// Whether each object's writable data and thread-local block are
    /// carried (the program's closure, and libferry itself).
    pub carried: Vec<bool>,
    /// Why the program's objects cannot be carried (empty: they can).
    pub refusals: Vec<String>,
    /// Libraries shared with MPI whose state is left to the new process,
    /// with why.
    pub left: Vec<String>,
}

/// Decides, for this process now, which objects an image carries:
///
/// * an object nothing reaches: refused (ferry cannot tell whose state it
///   is);
/// * a library of the program alone whose writable data or thread-local
///   block points into memory an image does not carry and a new process
///   would not have the same (the C library's heap, a mapping of its own,
///   the first stack, another thread's stack): refused, naming it;
/// * a library shared with MPI or libferry that points there: its state
///   was set up on MPI's behalf (inside an MPI call, whose allocations are
///   MPI's), so the new process keeps its own, set up by its own MPI;
/// * otherwise the program's objects are carried.
pub fn plan(objs: &[Object]) -> Plan {
    let sides = sides(objs);
    let fb = super::elf::ferry_base();
    let maps = Maps::read();
    let mut p = Plan {
        carried: vec![false; objs.len()],
        refusals: Vec::new(),
        left: Vec::new(),
        sides: Vec::new(),
    };
    for (i, (o, side)) in objs.iter().zip(&sides).enumerate() {
        let foreign = || {
            let mut ranges: Vec<(usize, usize)> = o.writable.clone();
            ranges.extend(o.tls);
            ranges
                .iter()
                .find_map(|&(lo, hi)| maps.first_foreign_pointer(lo, hi, objs))
        };
        p.carried[i] = match side {
            _ if o.base == fb => true,
            None => {
                p.refusals.push(format!(
                    "{} is loaded, but neither the program nor MPI loaded it (preloaded, or \
                     opened where the library could not see): ferry cannot tell whether its \
                     state is the program's",
                    o.name
                ));
                false
            }
            Some(Side::Program) if o.is_executable() => true,
            Some(Side::Program) => match foreign() {
                Some((at, to, what)) => {
                    p.refusals.push(format!(
                        "{} holds a pointer (at {at:#x}) to {to:#x} in {what}, which a new \
                         process would not have: its state cannot be carried",
                        o.name
                    ));
                    false
                }
                None => true,
            },
            Some(Side::Shared) => match foreign() {
                Some((at, to, what)) => {
                    p.left.push(format!(
                        "{} (needed by MPI too) points (at {at:#x}) to {to:#x} in {what}: its \
                         state is MPI's, the new process keeps its own",
                        o.name
                    ));
                    false
                }
                None => true,
            },
            Some(_) => false,
        };
    }
    p.sides = sides;
    p
}

/// Whether a loaded object (by its load bias) is carried, in this process
/// now.
pub fn carried_base(base: usize) -> bool {
    let objs = super::elf::objects();
    let p = plan(&objs);
    objs.iter()
        .zip(&p.carried)
        .any(|(o, &c)| o.base == base && c)
}

/// Why the program's libraries cannot be carried now, one reason per
/// library (empty: they can); see [`plan`].
pub fn reasons() -> Vec<String> {
    let p = plan(&super::elf::objects());
    for l in &p.left {
        log::info!("{l}");
    }
    p.refusals
}

/// The process's mappings (`/proc/self/maps`), for the pointer check.
struct Maps(Vec<(usize, usize, String)>);

impl Maps {
    fn read() -> Maps {
        let text = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        Maps(text.lines().filter_map(parse_maps_line).collect())
    }

    /// The first word of `[lo, hi)` that points into a mapping an image
    /// does not carry and a new process would not have the same: (where,
    /// to where, what is there).
    fn first_foreign_pointer(
        &self,
        lo: usize,
        hi: usize,
        objs: &[Object],
    ) -> Option<(usize, usize, String)> {
        let words = (hi.saturating_sub(lo)) / 8;
        for i in 0..words {
            let at = lo + i * 8;
            // SAFETY: a readable, mapped range of this process (a loaded
            // object's writable segment or this thread's TLS block).
            let v = unsafe { std::ptr::read_volatile(at as *const usize) };
            if v < 0x10000 || kept(v, objs) {
                continue;
            }
            if let Some(m) = self.0.iter().find(|m| m.0 <= v && v < m.1) {
                return Some((at, v, describe(&m.2)));
            }
        }
        None
    }
}

/// Whether a word holding `v` stays right in a new process: it points
/// into a fixed region of the layout or into a loaded object (same
/// addresses, checked by the restore), or it is no pointer the program
/// can hold.
///
/// * The heaps and the main stack are carried.
/// * The virtual handles (Open MPI) are values, not memory: a library
///   keeping a communicator of its own holds one, and it names the same
///   object in the new process.
/// * The handover page and the restore stack are ferry's alone: the
///   program is never given an address in them, so a word that looks like
///   one is a number (two `int`s side by side, say).
fn kept(v: usize, objs: &[Object]) -> bool {
    use super::layout::*;
    let inside = |base: usize, len: usize| (base..base + len).contains(&v);
    inside(APP_HEAP_BASE, APP_HEAP_LEN)
        || inside(APP_STACK_BASE, APP_STACK_LEN)
        || inside(LIB_HEAP_BASE, LIB_HEAP_LEN)
        || inside(HANDLE_BASE, HANDLE_LEN)
        || inside(HANDOVER_BASE, HANDOVER_LEN)
        || inside(RESTORE_STACK_BASE, RESTORE_STACK_LEN)
        || objs.iter().any(|o| o.contains(v))
}

fn describe(path: &str) -> String {
    match path {
        "" => "an anonymous mapping".into(),
        "[heap]" => "the C library's heap".into(),
        p if p.starts_with("[stack") => "the process's first stack".into(),
        p => p.to_string(),
    }
}

/// `lo-hi perms offset dev inode path` of `/proc/self/maps`.
fn parse_maps_line(line: &str) -> Option<(usize, usize, String)> {
    let mut parts = line.split_whitespace();
    let range = parts.next()?;
    let (a, b) = range.split_once('-')?;
    let path = parts.nth(4).unwrap_or("").to_string();
    Some((
        usize::from_str_radix(a, 16).ok()?,
        usize::from_str_radix(b, 16).ok()?,
        path,
    ))
}

/// The loaded objects as an image records them (pinned: those whose
/// address the image depends on).
/// `reopen`: the objects the program opened (see
/// [`crate::mem::opened::reopens`]), listed first, in the order they are to be
/// opened again.
pub fn loaded_objects(
    objs: &[Object],
    carried: &[bool],
    reopen: &[(usize, super::format::Reopen)],
) -> Vec<super::format::Loaded> {
    let entry = |i: usize| {
        let o = &objs[i];
        super::format::Loaded {
            name: o.name.clone(),
            base: o.base as u64,
            // Everything but the vDSO and what MPI or the C library opened
            // itself (plugins, name-service modules, which a new process
            // opens where it likes): the program's
            // data may point into any of them.
            pinned: carried[i]
                || !(o.is_vdso()
                    || matches!(
                        super::opened::opener_of(o),
                        Some(super::closure::Opener::Mpi | super::closure::Opener::CLibrary)
                    )),
            reopen: reopen.iter().find(|(j, _)| *j == i).map(|(_, r)| *r),
        }
    };
    reopen
        .iter()
        .map(|&(i, _)| entry(i))
        .chain(
            (0..objs.len())
                .filter(|i| !reopen.iter().any(|(j, _)| j == i))
                .map(entry),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_kept_across_a_move() {
        use crate::mem::layout::*;
        for v in [
            APP_HEAP_BASE + 16,
            APP_STACK_TOP - 8,
            LIB_HEAP_BASE,
            HANDLE_BASE + 2,
            HANDLE_BASE + HANDLE_LEN - 1,
            HANDOVER_BASE + 8,
            RESTORE_STACK_BASE + 0x1d,
        ] {
            assert!(kept(v, &[]), "{v:#x}");
        }
        for v in [
            HANDLE_BASE + HANDLE_LEN,
            RESTORE_STACK_BASE + RESTORE_STACK_LEN,
            0x5555_5555_9000,
            0x7fff_f7fb_f000,
        ] {
            assert!(!kept(v, &[]), "{v:#x}");
        }
    }

    #[test]
    fn maps_lines() {
        assert_eq!(
            parse_maps_line("7ffff7a00000-7ffff7a28000 r--p 00000000 08:01 123 /usr/lib/libc.so.6"),
            Some((
                0x7fff_f7a0_0000,
                0x7fff_f7a2_8000,
                "/usr/lib/libc.so.6".into()
            ))
        );
        assert_eq!(
            parse_maps_line("555555559000-55555557a000 rw-p 00000000 00:00 0      [heap]"),
            Some((0x5555_5555_9000, 0x5555_5557_a000, "[heap]".into()))
        );
        assert_eq!(
            parse_maps_line("7ffff7fc1000-7ffff7fc3000 rw-p 00000000 00:00 0"),
            Some((0x7fff_f7fc_1000, 0x7fff_f7fc_3000, String::new()))
        );
        assert_eq!(parse_maps_line("garbage"), None);
    }

    #[test]
    fn this_process_is_classified() {
        let objs = crate::mem::elf::objects();
        let s = sides(&objs);
        // (The library is linked into this test executable: it is libferry.)
        assert!(matches!(s[0], Some(Side::Program | Side::Ferry)));
        let p = plan(&objs);
        assert!(p.carried[0]);
        for (o, side) in objs.iter().zip(&s) {
            if o.file_name().starts_with("libc.so") || o.is_vdso() {
                assert_eq!(*side, Some(Side::CLibrary), "{}", o.name);
            }
        }
    }
}
