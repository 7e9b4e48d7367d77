//! Derived datatypes across a process image: described before the capture
//! from MPI's own account of them (`MPI_Type_get_envelope` and
//! `MPI_Type_get_contents`), made again on the new MPI after a restart,
//! in dependency order, committed where the program had committed them,
//! and named as they were. The program's virtual handles (see
//! [`crate::core::handles::datatype_real`]) then name the new datatypes.
//!
//! The description ([`Recipe`]) and the order of building ([`order`]) are
//! plain data, unit-tested without MPI.
use crate::core::handles::with_tables;
use crate::sys::constants::{self as k, combiners as c};
use crate::sys::*;
use std::ffi::{c_int, CString};

/// A component datatype of a recipe.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    /// A predefined datatype (the same handle in every process).
    Named(u64),
    /// Another derived datatype of the program (its slot).
    Slot(usize),
    /// A derived datatype the program no longer holds a handle to (freed
    /// after it was used to build this one).
    Anonymous(Box<Recipe>),
}

/// How to make a derived datatype again.
#[derive(Clone, Debug, PartialEq)]
pub struct Recipe {
    pub combiner: c_int,
    pub ints: Vec<c_int>,
    pub aints: Vec<i64>,
    pub parts: Vec<Part>,
}

/// A recorded datatype of the program.
#[derive(Clone, Debug)]
pub struct Saved {
    pub slot: usize,
    pub recipe: Recipe,
    pub committed: bool,
    pub name: Option<CString>,
}

/// Slots in an order where every datatype comes after the slots it is made
/// of (a datatype can only be made of existing ones, but a handle MPI gave
/// back later, e.g. by `MPI_Type_get_contents`, may have a newer slot).
/// `None` if the references loop (corrupt records).
pub fn order(saved: &[Saved]) -> Option<Vec<usize>> {
    fn deps(r: &Recipe, out: &mut Vec<usize>) {
        for p in &r.parts {
            match p {
                Part::Slot(s) => out.push(*s),
                Part::Anonymous(a) => deps(a, out),
                Part::Named(_) => {}
            }
        }
    }
    let index = |slot: usize| saved.iter().position(|s| s.slot == slot);
    let mut state = vec![0u8; saved.len()]; // 0 new, 1 visiting, 2 done
    let mut out = Vec::with_capacity(saved.len());
    fn visit(
        i: usize,
        saved: &[Saved],
        state: &mut [u8],
        out: &mut Vec<usize>,
        index: &dyn Fn(usize) -> Option<usize>,
    ) -> bool {
        match state[i] {
            2 => return true,
            1 => return false,
            _ => {}
        }
        state[i] = 1;
        let mut d = Vec::new();
        deps(&saved[i].recipe, &mut d);
        for s in d {
            if let Some(j) = index(s) {
                if !visit(j, saved, state, out, index) {
                    return false;
                }
            }
        }
        state[i] = 2;
        out.push(saved[i].slot);
        true
    }
    for i in 0..saved.len() {
        if !visit(i, saved, &mut state, &mut out, &index) {
            return None;
        }
    }
    Some(out)
}

/// Describes a real derived datatype. Component handles MPI returns are
/// freed again (they are new references).
// `MPI_Aint` is `i64` under MPICH and `isize` under Open MPI.
#[allow(clippy::unnecessary_cast)]
fn describe(real: MPI_Datatype, depth: usize) -> Result<Recipe, String> {
    if depth > 64 {
        return Err("a derived datatype nested more than 64 deep".into());
    }
    let (mut ni, mut na, mut nd, mut comb) = (0, 0, 0, 0);
    // SAFETY: queries on a live datatype; arrays of the sizes MPI gave.
    unsafe {
        if PMPI_Type_get_envelope(real, &mut ni, &mut na, &mut nd, &mut comb) != k::MPI_SUCCESS() {
            return Err("MPI_Type_get_envelope failed".into());
        }
        let mut ints = vec![0 as c_int; ni as usize];
        let mut aints = vec![0 as MPI_Aint; na as usize];
        let mut types = vec![k::MPI_DATATYPE_NULL(); nd as usize];
        if PMPI_Type_get_contents(
            real,
            ni,
            na,
            nd,
            ints.as_mut_ptr(),
            aints.as_mut_ptr(),
            types.as_mut_ptr(),
        ) != k::MPI_SUCCESS()
        {
            return Err("MPI_Type_get_contents failed (a datatype with large counts?)".into());
        }
        let mut parts = Vec::with_capacity(types.len());
        for mut t in types {
            if crate::core::objects::is_named(t) {
                parts.push(Part::Named(crate::sys::bits::handle_bits(t)));
                continue;
            }
            let known = with_tables(|tb| {
                tb.datatypes
                    .iter()
                    .find(|(_, s)| s.real == t)
                    .map(|(i, _)| i)
            });
            let part = match known {
                Some(i) => Part::Slot(i),
                None => Part::Anonymous(Box::new(describe(t, depth + 1)?)),
            };
            parts.push(part);
            PMPI_Type_free(&mut t);
        }
        Ok(Recipe {
            combiner: comb,
            ints,
            aints: aints.into_iter().map(|a| a as i64).collect(),
            parts,
        })
    }
}

/// Every live derived datatype of the program, described. Before a
/// capture.
pub fn save_all() -> Result<Vec<Saved>, String> {
    let live: Vec<(usize, MPI_Datatype, bool)> = with_tables(|t| {
        t.datatypes
            .iter()
            .map(|(i, s)| (i, s.real, s.committed))
            .collect()
    });
    let mut out = Vec::with_capacity(live.len());
    for (slot, real, committed) in live {
        let recipe = describe(real, 0)?;
        if !supported(&recipe) {
            return Err(format!(
                "a derived datatype made in a way this version cannot make again (combiner {})",
                recipe.combiner
            ));
        }
        let mut name = [0 as std::ffi::c_char; 256];
        let mut len: c_int = 0;
        // SAFETY: a live datatype; the buffer exceeds MPI_MAX_OBJECT_NAME.
        let named = unsafe { PMPI_Type_get_name(real, name.as_mut_ptr(), &mut len) }
            == k::MPI_SUCCESS()
            && len > 0;
        let name = named
            // SAFETY: MPI wrote a NUL-terminated name.
            .then(|| unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }.to_owned());
        out.push(Saved {
            slot,
            recipe,
            committed,
            name,
        });
    }
    Ok(out)
}

fn supported(r: &Recipe) -> bool {
    let known = [
        c::MPI_COMBINER_DUP,
        c::MPI_COMBINER_CONTIGUOUS,
        c::MPI_COMBINER_VECTOR,
        c::MPI_COMBINER_HVECTOR,
        c::MPI_COMBINER_INDEXED,
        c::MPI_COMBINER_HINDEXED,
        c::MPI_COMBINER_INDEXED_BLOCK,
        c::MPI_COMBINER_HINDEXED_BLOCK,
        c::MPI_COMBINER_STRUCT,
        c::MPI_COMBINER_SUBARRAY,
        c::MPI_COMBINER_DARRAY,
        c::MPI_COMBINER_RESIZED,
        c::MPI_COMBINER_F90_REAL,
        c::MPI_COMBINER_F90_COMPLEX,
        c::MPI_COMBINER_F90_INTEGER,
    ];
    known.contains(&r.combiner)
        && r.parts.iter().all(|p| match p {
            Part::Anonymous(a) => supported(a),
            _ => true,
        })
}

/// Makes every saved datatype again on the new MPI (after a restart) and
/// points its slot at it.
pub fn remake_all(saved: &[Saved]) -> Result<(), String> {
    let order = order(saved).ok_or("the recorded datatypes refer to each other in a loop")?;
    for slot in order {
        let Some(s) = saved.iter().find(|s| s.slot == slot) else {
            continue;
        };
        let mut real = build(&s.recipe)?;
        // SAFETY: the datatype just made.
        unsafe {
            if s.committed {
                PMPI_Type_commit(&mut real);
            }
            if let Some(n) = &s.name {
                PMPI_Type_set_name(real, n.as_ptr());
            }
        }
        with_tables(|t| {
            if let Some(d) = t.datatypes.get_mut(slot) {
                d.real = real;
            }
        });
    }
    Ok(())
}

/// The real handle of a part (made now for an anonymous one: `temp` says
/// so, and it is freed once used).
fn part_real(p: &Part) -> Result<(MPI_Datatype, bool), String> {
    Ok(match p {
        Part::Named(bits) => (crate::sys::bits::handle_from_bits(*bits), false),
        Part::Slot(s) => (
            with_tables(|t| t.datatypes.get(*s).map(|d| d.real))
                .ok_or("a recorded datatype refers to a slot that is gone")?,
            false,
        ),
        Part::Anonymous(r) => (build(r)?, true),
    })
}

/// Makes one datatype from its recipe.
fn build(r: &Recipe) -> Result<MPI_Datatype, String> {
    let mut parts = Vec::with_capacity(r.parts.len());
    for p in &r.parts {
        parts.push(part_real(p)?);
    }
    let t = |i: usize| parts.get(i).map(|p| p.0).unwrap_or(k::MPI_DATATYPE_NULL());
    let ints = &r.ints;
    let aints: Vec<MPI_Aint> = r.aints.iter().map(|&a| a as MPI_Aint).collect();
    let n = |i: usize| ints.get(i).copied().unwrap_or(0);
    let count = n(0).max(0) as usize;
    let short = || format!("a recorded datatype is malformed (combiner {})", r.combiner);
    let need = |ni: usize, na: usize, nd: usize| {
        (ints.len() >= ni && aints.len() >= na && parts.len() >= nd)
            .then_some(())
            .ok_or_else(short)
    };
    let mut out = k::MPI_DATATYPE_NULL();
    // SAFETY: every constructor gets arrays of the lengths its combiner's
    // description has (checked by `need`), and live component datatypes.
    let rc = unsafe {
        match r.combiner {
            x if x == c::MPI_COMBINER_DUP => {
                need(0, 0, 1)?;
                PMPI_Type_dup(t(0), &mut out)
            }
            x if x == c::MPI_COMBINER_CONTIGUOUS => {
                need(1, 0, 1)?;
                PMPI_Type_contiguous(n(0), t(0), &mut out)
            }
            x if x == c::MPI_COMBINER_VECTOR => {
                need(3, 0, 1)?;
                PMPI_Type_vector(n(0), n(1), n(2), t(0), &mut out)
            }
            x if x == c::MPI_COMBINER_HVECTOR => {
                need(2, 1, 1)?;
                PMPI_Type_create_hvector(n(0), n(1), aints[0], t(0), &mut out)
            }
            x if x == c::MPI_COMBINER_INDEXED => {
                need(1 + 2 * count, 0, 1)?;
                PMPI_Type_indexed(
                    n(0),
                    ints[1..].as_ptr(),
                    ints[1 + count..].as_ptr(),
                    t(0),
                    &mut out,
                )
            }
            x if x == c::MPI_COMBINER_HINDEXED => {
                need(1 + count, count, 1)?;
                PMPI_Type_create_hindexed(n(0), ints[1..].as_ptr(), aints.as_ptr(), t(0), &mut out)
            }
            x if x == c::MPI_COMBINER_INDEXED_BLOCK => {
                need(2 + count, 0, 1)?;
                PMPI_Type_create_indexed_block(n(0), n(1), ints[2..].as_ptr(), t(0), &mut out)
            }
            x if x == c::MPI_COMBINER_HINDEXED_BLOCK => {
                need(2, count, 1)?;
                PMPI_Type_create_hindexed_block(n(0), n(1), aints.as_ptr(), t(0), &mut out)
            }
            x if x == c::MPI_COMBINER_STRUCT => {
                need(1 + count, count, count)?;
                let types: Vec<MPI_Datatype> = (0..count).map(t).collect();
                PMPI_Type_create_struct(
                    n(0),
                    ints[1..].as_ptr(),
                    aints.as_ptr(),
                    types.as_ptr(),
                    &mut out,
                )
            }
            x if x == c::MPI_COMBINER_SUBARRAY => {
                let nd = count;
                need(1 + 3 * nd + 1, 0, 1)?;
                PMPI_Type_create_subarray(
                    n(0),
                    ints[1..].as_ptr(),
                    ints[1 + nd..].as_ptr(),
                    ints[1 + 2 * nd..].as_ptr(),
                    n(1 + 3 * nd),
                    t(0),
                    &mut out,
                )
            }
            x if x == c::MPI_COMBINER_DARRAY => {
                let nd = n(2).max(0) as usize;
                need(3 + 4 * nd + 1, 0, 1)?;
                PMPI_Type_create_darray(
                    n(0),
                    n(1),
                    n(2),
                    ints[3..].as_ptr(),
                    ints[3 + nd..].as_ptr(),
                    ints[3 + 2 * nd..].as_ptr(),
                    ints[3 + 3 * nd..].as_ptr(),
                    n(3 + 4 * nd),
                    t(0),
                    &mut out,
                )
            }
            x if x == c::MPI_COMBINER_RESIZED => {
                need(0, 2, 1)?;
                PMPI_Type_create_resized(t(0), aints[0], aints[1], &mut out)
            }
            x if x == c::MPI_COMBINER_F90_REAL => {
                need(2, 0, 0)?;
                PMPI_Type_create_f90_real(n(0), n(1), &mut out)
            }
            x if x == c::MPI_COMBINER_F90_COMPLEX => {
                need(2, 0, 0)?;
                PMPI_Type_create_f90_complex(n(0), n(1), &mut out)
            }
            x if x == c::MPI_COMBINER_F90_INTEGER => {
                need(1, 0, 0)?;
                PMPI_Type_create_f90_integer(n(0), &mut out)
            }
            _ => return Err(short()),
        }
    };
    for (mut d, temp) in parts {
        if temp {
            // SAFETY: an anonymous component made above, no longer needed.
            unsafe { PMPI_Type_free(&mut d) };
        }
    }
    if rc != k::MPI_SUCCESS() {
        return Err(format!(
            "cannot make a datatype again (combiner {}, error {rc})",
            r.combiner
        ));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Datatypes freed under a pending request. MPI frees such a datatype only
// once the request is done; a rebuild that takes the request off its
// communicator and posts it again needs the datatype then. So before the
// program's `MPI_Type_free`, a datatype that a pending receive or
// persistent request names gets a twin of the same layout (resized to its
// own bounds: no attribute is copied, no callback runs), which its slot
// keeps, held, until no request names it.

/// Whether a pending request of the program names datatype `v` (its
/// virtual handle).
fn named_by_request(t: &crate::core::handles::Tables, v: MPI_Datatype) -> bool {
    t.requests
        .iter()
        .any(|(_, r)| r.p2p.is_some_and(|a| a.datatype == v))
}

/// Before the program frees datatype `v` (real `real`): a committed twin
/// of the same layout if a pending request names it, else `None`.
///
/// # Safety
/// `real` is a live datatype of the program.
pub unsafe fn twin_for_pending(v: MPI_Datatype, real: MPI_Datatype) -> Option<MPI_Datatype> {
    if v == real || !with_tables(|t| named_by_request(t, v)) {
        return None;
    }
    let (mut lb, mut extent): (MPI_Aint, MPI_Aint) = (0, 0);
    let mut twin = k::MPI_DATATYPE_NULL();
    // SAFETY: contract of the function; out-parameters are locals.
    let rc = unsafe {
        PMPI_Type_get_extent(real, &mut lb, &mut extent);
        let rc = PMPI_Type_create_resized(real, lb, extent, &mut twin);
        if rc == k::MPI_SUCCESS() {
            PMPI_Type_commit(&mut twin)
        } else {
            rc
        }
    };
    if rc != k::MPI_SUCCESS() {
        log::warn!(
            "a datatype freed under a pending request could not be kept ({rc}): a rebuild \
             could not post that request again"
        );
        return None;
    }
    Some(twin)
}

/// After the program freed datatype `v`: its slot keeps `twin`, held.
pub fn hold(v: MPI_Datatype, twin: MPI_Datatype) {
    let Some(i) = crate::core::handles::datatype_index(v) else {
        return;
    };
    with_tables(|t| {
        if let Some(s) = t.datatypes.get_mut(i) {
            s.real = twin;
            s.held = true;
            s.committed = true;
        }
    });
}

/// Frees the twins that no pending request names any more (after the
/// program frees a datatype, and after a rebuild posted its requests
/// again).
pub fn release_held() {
    let done: Vec<(usize, MPI_Datatype)> = with_tables(|t| {
        let held: Vec<(usize, MPI_Datatype)> = t
            .datatypes
            .iter()
            .filter(|(_, s)| s.held)
            .map(|(i, s)| (i, s.real))
            .collect();
        held.into_iter()
            .filter(|(i, _)| !named_by_request(t, crate::core::handles::datatype_virtual(*i)))
            .collect()
    });
    for (i, mut twin) in done {
        with_tables(|t| t.datatypes.remove(i));
        // SAFETY: the library's own twin, which nothing names any more.
        unsafe { PMPI_Type_free(&mut twin) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(slot: usize, parts: Vec<Part>) -> Saved {
        Saved {
            slot,
            recipe: Recipe {
                combiner: 0,
                ints: vec![],
                aints: vec![],
                parts,
            },
            committed: false,
            name: None,
        }
    }

    #[test]
    fn components_come_first() {
        // 5 is made of 9 (a handle given back later, so a newer slot) and
        // of an anonymous datatype made of 2; 2 of a predefined one.
        let s = vec![
            saved(
                5,
                vec![
                    Part::Slot(9),
                    Part::Anonymous(Box::new(saved(0, vec![Part::Slot(2)]).recipe)),
                ],
            ),
            saved(9, vec![Part::Named(1)]),
            saved(2, vec![Part::Named(1)]),
        ];
        let o = order(&s).unwrap();
        let pos = |x| o.iter().position(|&y| y == x).unwrap();
        assert!(pos(9) < pos(5));
        assert!(pos(2) < pos(5));
        assert_eq!(o.len(), 3);
    }

    #[test]
    fn loops_are_refused() {
        let s = vec![saved(1, vec![Part::Slot(2)]), saved(2, vec![Part::Slot(1)])];
        assert!(order(&s).is_none());
    }
}
