//! Membership: who is in each communicator, as ranks of the world, and how
//! to rebuild every derived communicator on a new world (the patent's "new
//! group"). A communicator is described by its [`Recipe`], read from the
//! communicator itself when MPI makes it: the world ranks of its group (and
//! of its remote group for an intercommunicator) and its topology.
//!
//! After the world changes, [`rebuild_all`] re-creates every derived
//! communicator in the order of their global ids with `MPI_Comm_create_group` (only the
//! members take part), then `MPI_Intercomm_create` or the topology
//! constructor on top, so that every rank keeps its rank, and carries over
//! the name and the error handler.
use crate::core::handles::{self, with_tables};
pub(crate) use crate::core::recipe::world_ranks;
pub use crate::core::recipe::{Recipe, Topology};
use crate::sys::constants as k;
use crate::sys::*;
use std::ffi::c_int;

/// The tag used among the members of a communicator being rebuilt. Members
/// rebuild their communicators in the same order (by global id), so a single
/// tag cannot mismatch.
const REBUILD_TAG: c_int = 7_770;

/// A communicator over the given world ranks of `world`, made by its
/// members only.
unsafe fn group_comm(world: MPI_Comm, ranks: &[c_int]) -> Result<MPI_Comm, c_int> {
    let mut wg = k::MPI_GROUP_NULL();
    let mut g = k::MPI_GROUP_NULL();
    let mut c = k::MPI_COMM_NULL();
    // SAFETY: live world; `ranks` are valid world ranks.
    let rc = unsafe {
        PMPI_Comm_group(world, &mut wg);
        PMPI_Group_incl(wg, ranks.len() as c_int, ranks.as_ptr(), &mut g);
        let rc = PMPI_Comm_create_group(world, g, REBUILD_TAG, &mut c);
        PMPI_Group_free(&mut g);
        PMPI_Group_free(&mut wg);
        rc
    };
    if rc == k::MPI_SUCCESS() {
        Ok(c)
    } else {
        Err(rc)
    }
}

impl Recipe {
    /// Makes the communicator on `world`. Collective over its members.
    ///
    /// # Safety
    /// `world` must be a live communicator over the same processes, in the
    /// same rank order, as the world the recipe was read against.
    pub unsafe fn build(&self, world: MPI_Comm) -> Result<MPI_Comm, c_int> {
        let local = self.local.as_ref().ok_or(k::MPI_ERR_COMM())?;
        // SAFETY: see the function's contract.
        unsafe {
            let base = group_comm(world, local)?;
            let mut c = k::MPI_COMM_NULL();
            let rc = match (&self.remote, &self.topology) {
                (Some(Some(remote)), _) => {
                    PMPI_Intercomm_create(base, 0, world, remote[0], REBUILD_TAG, &mut c)
                }
                (Some(None), _) => return Err(k::MPI_ERR_COMM()),
                (None, Topology::None) => return Ok(base),
                (None, Topology::Cart { dims, periods }) => PMPI_Cart_create(
                    base,
                    dims.len() as c_int,
                    dims.as_ptr(),
                    periods.as_ptr(),
                    0,
                    &mut c,
                ),
                (None, Topology::Graph { index, edges }) => PMPI_Graph_create(
                    base,
                    index.len() as c_int,
                    index.as_ptr(),
                    edges.as_ptr(),
                    0,
                    &mut c,
                ),
                (
                    None,
                    Topology::DistGraph {
                        sources,
                        source_weights,
                        destinations,
                        destination_weights,
                    },
                ) => PMPI_Dist_graph_create_adjacent(
                    base,
                    sources.len() as c_int,
                    sources.as_ptr(),
                    source_weights
                        .as_ref()
                        .map(|w| w.as_ptr())
                        .unwrap_or(k::MPI_UNWEIGHTED()),
                    destinations.len() as c_int,
                    destinations.as_ptr(),
                    destination_weights
                        .as_ref()
                        .map(|w| w.as_ptr())
                        .unwrap_or(k::MPI_UNWEIGHTED()),
                    k::MPI_INFO_NULL(),
                    0,
                    &mut c,
                ),
            };
            let mut b = base;
            PMPI_Comm_free(&mut b);
            if rc == k::MPI_SUCCESS() {
                Ok(c)
            } else {
                Err(rc)
            }
        }
    }
}

/// Name, error handler and the program's attributes of a communicator,
/// carried to its successor. Attributes are set directly (no copy
/// callback runs: the attribute moves, it is not duplicated), and the old
/// communicator is never freed, so no delete callback runs either. An
/// attribute of a keyval made from Fortran is carried through the MPI's
/// Fortran calls (in C, MPI would hand over the address of its copy of the
/// value) and stays on the old communicator too: removing it would call
/// the program's delete function, which the library cannot silence.
unsafe fn carry_over(old: MPI_Comm, new: MPI_Comm) {
    for (kv, fortran) in crate::core::keyvals::program_keyvals() {
        if fortran {
            // SAFETY: both live.
            unsafe { crate::core::keyvals::carry_fortran_attribute(old, new, kv) };
            continue;
        }
        let mut val: *mut std::ffi::c_void = std::ptr::null_mut();
        let mut flag: c_int = 0;
        // SAFETY: both live; `val` receives the attribute's value.
        unsafe {
            if PMPI_Comm_get_attr(
                old,
                kv,
                (&mut val as *mut *mut std::ffi::c_void).cast(),
                &mut flag,
            ) == k::MPI_SUCCESS()
                && flag != 0
            {
                PMPI_Comm_set_attr(new, kv, val);
                // The value moved: the old communicator lets go of it
                // without the program hearing of a delete.
                crate::core::keyvals::with_silent_delete(|| PMPI_Comm_delete_attr(old, kv));
            }
        }
    }
    let mut name = [0 as std::ffi::c_char; 256];
    let mut len: c_int = 0;
    let mut eh = k::MPI_ERRHANDLER_NULL();
    // SAFETY: both live; the name buffer exceeds MPI_MAX_OBJECT_NAME.
    unsafe {
        if PMPI_Comm_get_name(old, name.as_mut_ptr(), &mut len) == k::MPI_SUCCESS() && len > 0 {
            PMPI_Comm_set_name(new, name.as_ptr());
        }
        if PMPI_Comm_get_errhandler(old, &mut eh) == k::MPI_SUCCESS() {
            PMPI_Comm_set_errhandler(new, eh);
            PMPI_Errhandler_free(&mut eh);
        }
    }
}

/// World ranks of every member of a communicator slot (both groups of an
/// intercommunicator); the whole world for slot 0.
pub fn members(slot: usize) -> Vec<c_int> {
    with_tables(|t| members_in(t, slot))
}

fn members_in(t: &handles::Tables, slot: usize) -> Vec<c_int> {
    let Some(c) = t.comms.get(slot) else {
        return Vec::new();
    };
    if slot == 0 {
        return (0..c.sent.len() as c_int).collect();
    }
    let Some(r) = c.recipe.as_ref() else {
        return Vec::new();
    };
    let mut m = r.local.clone().unwrap_or_default();
    if let Some(Some(remote)) = &r.remote {
        m.extend(remote);
    }
    m
}

/// Which communicators every member still holds. A member may have freed
/// a communicator (`MPI_Comm_free` returns at once) while another has not
/// yet: such a communicator cannot be rebuilt (the one that freed it would
/// not take part) and stays on its old real communicator where it lives.
/// Collective over `control`; returns the slots to keep as they are.
///
/// # Safety
/// Every process of the job must call it, with the same `control`.
pub unsafe fn orphans(control: MPI_Comm) -> std::collections::HashSet<usize> {
    use std::collections::{HashMap, HashSet};
    let mine: Vec<(usize, u64)> = with_tables(|t| {
        t.comms
            .iter()
            .filter(|(i, s)| *i >= 2 && s.is_communicator() && s.gid != 0)
            .map(|(i, s)| (i, s.gid))
            .collect()
    });
    let gids: Vec<u64> = mine.iter().map(|m| m.1).collect();
    // SAFETY: collective over the control communicator (contract of the
    // function).
    let all = unsafe { crate::sys::collective::allgatherv(control, &gids) }.unwrap_or_default();
    let mut holders: HashMap<u64, HashSet<c_int>> = HashMap::new();
    for (r, part) in all.iter().enumerate() {
        for g in part {
            holders.entry(*g).or_default().insert(r as c_int);
        }
    }
    mine.into_iter()
        .filter(|(i, g)| {
            let h = holders.get(g);
            !members(*i).iter().all(|m| h.is_some_and(|h| h.contains(m)))
        })
        .map(|(i, _)| i)
        .collect()
}

/// Statistics of one rebuild.
#[derive(Default, Debug)]
pub struct Rebuilt {
    pub communicators: usize,
    pub skipped: usize,
}

/// Moves the process onto `new_world` and rebuilds every derived
/// communicator on it, in the order of their global ids. Collective over the world.
///
/// The old real communicators are retired, not freed: freeing would run
/// the program's attribute delete callbacks at a moment it did not choose.
///
/// # Safety
/// Every process of the world must call it at a point where no message is
/// in flight on any communicator (after the drain), with the same new
/// world.
pub unsafe fn rebuild_all(
    new_world: MPI_Comm,
    keep_old: &dyn Fn(usize) -> bool,
) -> Result<Rebuilt, c_int> {
    // SAFETY: contract of the function.
    unsafe { rebuild_all_from(new_world, keep_old, true) }
}

/// [`rebuild_all`], with or without carrying attributes, names and error
/// handlers over from the old real communicators (`carry`: they are alive;
/// after a restart they belong to the old process's MPI and are not).
///
/// # Safety
/// As [`rebuild_all`].
pub unsafe fn rebuild_all_from(
    new_world: MPI_Comm,
    keep_old: &dyn Fn(usize) -> bool,
    carry: bool,
) -> Result<Rebuilt, c_int> {
    let old_world = handles::comm_real(k::MPI_COMM_WORLD());
    if carry {
        // SAFETY: contract of the function.
        unsafe { carry_over(old_world, new_world) };
    }
    // One order on every process: by global id (creation order is local,
    // and two `MPI_Comm_idup`s on different parents may be started in
    // either order by different members); then by creation, should two ids
    // ever collide. Read what is needed, then call MPI without holding a
    // reference into the tables.
    // ((global id, creation), slot, real communicator, recipe)
    type Entry = ((u64, u64), usize, MPI_Comm, Option<Recipe>);
    let mut order: Vec<Entry> = with_tables(|t| {
        t.comms
            .iter()
            .filter(|(i, s)| *i >= 2 && s.is_communicator())
            .map(|(i, s)| ((s.gid, s.serial), i, s.real, s.recipe.as_deref().cloned()))
            .collect()
    });
    order.sort_by_key(|e| e.0);
    with_tables(|t| {
        if let Some(w) = t.comms.get_mut(0) {
            w.real = new_world;
            if carry && old_world != k::MPI_COMM_WORLD() && old_world != new_world {
                // A world an earlier regroup or migration made: the
                // library's own, kept with the others (freed before
                // `MPI_Finalize` where that matters, see
                // `handles::free_all_comms`).
                w.retired.push(old_world);
            }
        }
    });
    let mut stats = Rebuilt::default();
    for (_, i, old, recipe) in order {
        let Some(recipe) = recipe.filter(|r| r.rebuildable() && !keep_old(i)) else {
            stats.skipped += 1;
            continue;
        };
        // SAFETY: contract of the function.
        let new = unsafe { recipe.build(new_world)? };
        if carry {
            // SAFETY: both live.
            unsafe { carry_over(old, new) };
        }
        with_tables(|t| {
            if let Some(s) = t.comms.get_mut(i) {
                s.real = new;
                if carry {
                    // Kept until the program frees the communicator:
                    // attributes of keyvals it already freed stay there,
                    // and their delete functions run then, as they would
                    // have.
                    s.retired.push(old);
                }
            }
        });
        stats.communicators += 1;
    }
    Ok(stats)
}

/// The colour of each process in a split by host: the first rank whose
/// host is the same (`hosts[r]`: an identity of rank r's host).
pub fn host_colours(hosts: &[u64]) -> Vec<c_int> {
    hosts
        .iter()
        .map(|h| hosts.iter().position(|o| o == h).unwrap_or(0) as c_int)
        .collect()
}

/// An identity of this process's host: its name and the machine's boot id
/// (the network-namespace hosts of one machine differ by name), hashed.
fn host_identity() -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    ferry_common::job::hostname().hash(&mut h);
    ferry_common::job::machine_id().hash(&mut h);
    h.finish()
}

/// `MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, key, ..)` made from
/// the processes' hosts: one communicator per host, ranks ordered by `key`
/// then by rank in `comm`, as MPI orders a split.
///
/// # Safety
/// Collective over the real communicator `comm`; `out` as MPI requires.
pub unsafe fn split_by_host(comm: MPI_Comm, key: c_int, out: *mut MPI_Comm) -> c_int {
    let mut size: c_int = 0;
    let mut rank: c_int = 0;
    // SAFETY: a live communicator; locals as out-parameters.
    unsafe {
        PMPI_Comm_size(comm, &mut size);
        PMPI_Comm_rank(comm, &mut rank);
    }
    let mine = host_identity();
    // SAFETY: one word from each process (contract of the function).
    let all = match unsafe { crate::sys::collective::allgather(comm, mine) } {
        Ok(all) => all,
        Err(rc) => return rc,
    };
    let colour = host_colours(&all)[rank as usize];
    // SAFETY: contract of the function.
    unsafe { PMPI_Comm_split(comm, colour, key, out) }
}

/// `MPI_Dist_graph_create` made with `MPI_Dist_graph_create_adjacent`:
/// every process learns its incoming and outgoing edges from the others
/// (an all-to-all of the edges each declared), then the graph is made from
/// them. MPICH 5.0.2's own `MPI_Dist_graph_create` never returns on a
/// communicator that holds a spawned process (it hangs without ferry too),
/// which every communicator of a job holds after a migration.
///
/// Neighbours come in the order of the declaring ranks (MPI leaves the
/// order of a non-adjacent graph's neighbours to the implementation).
///
/// # Safety
/// As `MPI_Dist_graph_create` on the real communicator `comm`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn dist_graph_create(
    comm: MPI_Comm,
    n: c_int,
    sources: *const c_int,
    degrees: *const c_int,
    destinations: *const c_int,
    weights: *const c_int,
    info: MPI_Info,
    reorder: c_int,
    out: *mut MPI_Comm,
) -> c_int {
    let weighted = !std::ptr::eq(weights, k::MPI_UNWEIGHTED());
    let mut size: c_int = 0;
    // SAFETY: a live communicator.
    unsafe { PMPI_Comm_size(comm, &mut size) };
    let p = size.max(0) as usize;
    // Edges to tell each process: (kind 0 = it is the source / 1 = it is
    // the destination, the other end, the weight).
    let mut to: Vec<Vec<c_int>> = vec![Vec::new(); p];
    let mut at = 0usize;
    for i in 0..n.max(0) as usize {
        // SAFETY: the program's arrays of n sources and degrees, and of
        // sum(degrees) destinations (and weights).
        let (s, d) = unsafe { (*sources.add(i), *degrees.add(i)) };
        for _ in 0..d.max(0) {
            // SAFETY: as above.
            let (dst, w) = unsafe {
                (
                    *destinations.add(at),
                    if weighted && !weights.is_null() {
                        *weights.add(at)
                    } else {
                        1
                    },
                )
            };
            at += 1;
            if (0..size).contains(&s) && (0..size).contains(&dst) {
                to[s as usize].extend([0, dst, w]);
                to[dst as usize].extend([1, s, w]);
            } else {
                return MPI_ERR_RANK as c_int;
            }
        }
    }
    // (as words: ranks and weights are not negative)
    let words: Vec<Vec<u64>> = to
        .iter()
        .map(|v| v.iter().map(|&x| x as i64 as u64).collect())
        .collect();
    // SAFETY: collective over `comm` (contract of the function), one piece
    // per process.
    let got: Vec<c_int> = match unsafe {
        crate::sys::collective::alltoallv(comm, &words, crate::sys::collective::Wait::Blocking)
    } {
        Ok(pieces) => pieces.concat().iter().map(|&x| x as i64 as c_int).collect(),
        Err(rc) => return rc,
    };
    let (mut ins, mut inw, mut outs, mut outw) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for e in got.chunks_exact(3) {
        if e[0] == 0 {
            outs.push(e[1]);
            outw.push(e[2]);
        } else {
            ins.push(e[1]);
            inw.push(e[2]);
        }
    }
    let w = |v: &mut Vec<c_int>| {
        if weighted {
            v.as_mut_ptr()
        } else {
            k::MPI_UNWEIGHTED()
        }
    };
    // SAFETY: the neighbour lists just built; `out` is the caller's.
    unsafe {
        PMPI_Dist_graph_create_adjacent(
            comm,
            ins.len() as c_int,
            ins.as_ptr(),
            w(&mut inw),
            outs.len() as c_int,
            outs.as_ptr(),
            w(&mut outw),
            info,
            reorder,
            out,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_of_a_split_by_host() {
        assert_eq!(host_colours(&[7, 9, 7, 3, 9]), [0, 1, 0, 3, 1]);
        assert_eq!(host_colours(&[5]), [0]);
        assert!(host_colours(&[]).is_empty());
    }

    #[test]
    fn peer_counts() {
        let intra = Recipe {
            local: Some(vec![0, 2, 4]),
            remote: None,
            topology: Topology::None,
        };
        assert_eq!(intra.peer_count(), 3);
        assert!(intra.rebuildable());
        let inter = Recipe {
            local: Some(vec![0, 1]),
            remote: Some(Some(vec![2, 3, 4])),
            topology: Topology::None,
        };
        assert_eq!(inter.peer_count(), 3);
        let foreign = Recipe {
            local: Some(vec![0]),
            remote: Some(None),
            topology: Topology::None,
        };
        assert!(!foreign.rebuildable());
        assert_eq!(foreign.peer_count(), 0);
    }
}
