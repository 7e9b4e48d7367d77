//! Communicators and windows MPI just made, taken in: each gets a slot
//! with its recipe (how to make it again on a new world) and its global
//! id, which every member computes alike without communicating (from its
//! parent's id and superstep), so that supersteps can be compared across
//! processes. The lookups and the release are the tables' own
//! ([`crate::core::handles`]).
use crate::core::handles::{
    comm_virtual, lock, mix_gid, publish_gid, win_key, with_tables, world_real, CommRef, CommSlot,
    SlotKind,
};
use crate::core::recipe::{Recipe, Topology};
use crate::sys::constants as k;
use crate::sys::MPI_Comm;
use std::ffi::c_int;

/// The global id of a communicator being made, computed alike by every
/// member without communication: creation calls are collectives on the
/// parent, so the parent's id and superstep agree among the members, and
/// the lowest world rank and size of the new group tell apart the
/// communicators one split makes.
pub fn gid_of(recipe: &Recipe) -> u64 {
    let (parent, step) = crate::core::superstep::last_collective();
    let pgid = with_tables(|t| t.comms.get(parent).map(|s| s.gid).unwrap_or(0));
    let lowest = |g: &Option<Vec<c_int>>| {
        g.as_ref()
            .map(|v| {
                (
                    v.iter().copied().min().unwrap_or(-1) as i64 as u64,
                    v.len() as u64,
                )
            })
            .unwrap_or((u64::MAX, 0))
    };
    let (lo, n) = lowest(&recipe.local);
    let members = recipe
        .local
        .as_ref()
        .map(|v| mix_gid(&v.iter().map(|&r| r as i64 as u64).collect::<Vec<_>>()))
        .unwrap_or(0);
    let key = mix_gid(&[pgid, step, lo, n, members]);
    // Calls that are not collective on the parent (`MPI_Comm_create_group`)
    // share a parent superstep: the members tell them apart by how many
    // such communicators they made before, in the same order.
    let occurrence = with_tables(|t| {
        let seen = t.created.entry(key).or_insert(0);
        let occurrence = *seen;
        *seen += 1;
        occurrence
    });
    mix_gid(&[key, occurrence])
}

/// A communicator MPI just made: record it and give the program a virtual
/// handle. The recipe to rebuild it is read from the communicator itself.
pub fn comm_out(real: MPI_Comm) -> MPI_Comm {
    if real == k::MPI_COMM_NULL() {
        return real;
    }
    // SAFETY: MPI just returned `real` as a new communicator.
    let recipe = unsafe { Recipe::of(real, world_real()) };
    let v = comm_register(real, recipe);
    // A new communicator inherits its parent's error handler.
    crate::core::errhandlers::note_inherited_errhandler(v, real);
    v
}

/// Records a communicator with a known recipe.
pub fn comm_register(real: MPI_Comm, recipe: Recipe) -> MPI_Comm {
    comm_register_with(real, recipe, None)
}

/// Records the communicator of an `MPI_Comm_idup`, not usable before its
/// request completes: its id is its parent's and superstep's (the same on
/// both sides of an intercommunicator), with no exchange.
pub fn comm_register_dup(real: MPI_Comm, recipe: Recipe) -> MPI_Comm {
    let (parent, step) = crate::core::superstep::last_collective();
    let pgid = with_tables(|t| t.comms.get(parent).map(|s| s.gid).unwrap_or(0));
    comm_register_with(real, recipe, Some(mix_gid(&[pgid, step, 0x1d09])))
}

fn comm_register_with(real: MPI_Comm, recipe: Recipe, gid: Option<u64>) -> MPI_Comm {
    let _g = lock();
    let peers = recipe.peer_count();
    let exchange = gid.is_none() && recipe.remote.is_some() && recipe.rebuildable();
    let mut gid = gid.unwrap_or_else(|| gid_of(&recipe));
    if exchange {
        // The two groups of an intercommunicator come from different
        // parents: each side learns the other's candidate (a reduction
        // over an intercommunicator delivers the remote group's result).
        use crate::sys::collective::{allreduce, Op, Wait};
        // SAFETY: `real` is the new intercommunicator, which every member
        // of both groups is making at this very call.
        if let Ok(theirs) = unsafe { allreduce(real, &[gid], Op::Max, Wait::Blocking) } {
            gid = mix_gid(&[gid.min(theirs[0]), gid.max(theirs[0])]);
        }
    }
    let i = with_tables(|t| {
        let serial = t.next_serial;
        t.next_serial += 1;
        t.comms.insert(CommSlot {
            real,
            sent: vec![0; peers],
            received: vec![0; peers],
            recipe: Some(Box::new(recipe)),
            serial,
            errfn: 0,
            gid,
            retired: Vec::new(),
            kind: SlotKind::Communicator,
            held: false,
        })
    });
    crate::core::state::state().supersteps[i].store(0, std::sync::atomic::Ordering::Relaxed);
    publish_gid(i, gid);
    comm_virtual(i)
}

/// A slot that only counts collectives (a window, a group collective): no
/// real communicator, no channels.
fn counting_slot(
    t: &mut crate::core::handles::Tables,
    gid: u64,
    recipe: Option<Box<Recipe>>,
    kind: SlotKind,
) -> usize {
    let serial = t.next_serial;
    t.next_serial += 1;
    t.comms.insert(CommSlot {
        real: k::MPI_COMM_NULL(),
        sent: Vec::new(),
        received: Vec::new(),
        recipe,
        serial,
        errfn: 0,
        gid,
        retired: Vec::new(),
        kind,
        held: false,
    })
}

/// A window MPI just made (collectively over its group): give it a slot,
/// so that its collectives count as supersteps with a global id.
pub fn win_register(win: crate::sys::MPI_Win) {
    if win == k::MPI_WIN_NULL() {
        return;
    }
    let mut g = k::MPI_GROUP_NULL();
    // SAFETY: a live window; the group is freed below.
    let local = unsafe {
        crate::sys::PMPI_Win_get_group(win, &mut g);
        let v = crate::core::recipe::world_ranks(g, world_real());
        crate::sys::PMPI_Group_free(&mut g);
        v
    };
    let recipe = Recipe {
        local,
        remote: None,
        topology: Topology::None,
    };
    let gid = gid_of(&recipe);
    let _g = lock();
    let i = with_tables(|t| {
        let i = counting_slot(t, gid, Some(Box::new(recipe)), SlotKind::Window);
        t.windows.insert(win_key(win), i);
        i
    });
    crate::core::state::state().supersteps[i].store(0, std::sync::atomic::Ordering::Relaxed);
    publish_gid(i, gid);
}

/// A tag for the global id of a group collective (ASCII "grpcoll").
const GROUP_COLLECTIVE: u64 = 0x67_7270_636f_6c6c;

/// The slot that counts the `MPI_Comm_create_group` calls of `group` on
/// `parent` with `tag`, made on first use; and this process's members'
/// bitmap published for the synchronization's reader, with the slot in
/// `group_slot`, before the superstep is entered.
///
/// Such a call is collective over the group only: the other members do
/// not know it until they make it themselves. So while a process is
/// inside one, its window says who must come (the initiator then counts
/// every member that has not come yet at superstep 0 of that id, see
/// `protocol::sync::count_group_members`), and the members run on until
/// they have. Its global id mixes the parent's id, the tag and the world
/// ranks of the group: the same in every member, as MPI matches these
/// calls in order among the same group, parent and tag.
///
/// Returns `CommRef::NONE` (not synchronized) if the group cannot be read
/// or the world is larger than the bitmap.
///
/// # Safety
/// `group` must be a live group of the program (real handle).
pub unsafe fn group_collective(
    parent: CommRef,
    group: crate::sys::MPI_Group,
    tag: c_int,
) -> CommRef {
    // SAFETY: contract of the function.
    let Some(members) = (unsafe { crate::core::recipe::world_ranks(group, world_real()) }) else {
        return CommRef::NONE;
    };
    counted_group(GROUP_COLLECTIVE, parent, tag, &members)
}

/// A tag for the global id of the two leaders of an
/// `MPI_Intercomm_create` (ASCII "leaders").
const LEADERS: u64 = 0x6c_6561_6465_7273;

/// The two leaders of an `MPI_Intercomm_create`, counted as a group
/// collective by the local leader, whose rank in `peer` is `me` (the
/// other is `remote_leader` there). The call is collective over the local
/// communicator, whose superstep covers the local group, and needs the
/// remote leader, which nothing else covers. Both leaders compute the same
/// id (the peer communicator, the tag and the pair of world ranks) and
/// count it beside their local communicator's superstep, which alone
/// gates the call (the *companion* of `protocol::regroup::at_collective`).
pub fn leaders_pair(peer: CommRef, me: c_int, remote_leader: c_int, tag: c_int) -> CommRef {
    let Some(i) = peer.index() else {
        return CommRef::NONE;
    };
    let world = |x: c_int| -> Option<c_int> {
        if i == 0 {
            return Some(x);
        }
        with_tables(|t| {
            let r = t.comms.get(i)?.recipe.as_ref()?;
            if r.remote.is_some() {
                return None;
            }
            r.local.as_ref()?.get(usize::try_from(x).ok()?).copied()
        })
    };
    match (world(me), world(remote_leader)) {
        (Some(a), Some(b)) if a >= 0 && b >= 0 && a != b => {
            counted_group(LEADERS, peer, tag, &[a.min(b), a.max(b)])
        }
        _ => CommRef::NONE,
    }
}

/// The slot counting a group collective of `members` (world ranks) on
/// `parent` with `tag` (`kind` tells the calls apart), made on first use,
/// with the members published; see [`group_collective`].
fn counted_group(kind: u64, parent: CommRef, tag: c_int, members: &[c_int]) -> CommRef {
    use crate::core::state::{state, MAX_GROUP_RANKS};
    use std::sync::atomic::Ordering;
    if members
        .iter()
        .any(|&r| r < 0 || r as usize >= MAX_GROUP_RANKS)
    {
        log::warn!(
            "a group collective with world ranks beyond {MAX_GROUP_RANKS}: not synchronized \
             (a regroup during it may not complete)"
        );
        return CommRef::NONE;
    }
    let pgid = with_tables(|t| parent.index().and_then(|i| t.comms.get(i)).map(|s| s.gid));
    let Some(pgid) = pgid.filter(|&g| g != 0) else {
        return CommRef::NONE;
    };
    let ranks: Vec<u64> = members.iter().map(|&r| r as u64).collect();
    let gid = mix_gid(&[kind, pgid, tag as i64 as u64, mix_gid(&ranks)]);
    let _g = lock();
    let (i, new) = with_tables(|t| {
        if let Some(&i) = t.group_collectives.get(&gid) {
            return (i, false);
        }
        let i = counting_slot(t, gid, None, SlotKind::GroupCollective);
        t.group_collectives.insert(gid, i);
        (i, true)
    });
    let st = state();
    if new {
        st.supersteps[i].store(0, Ordering::Relaxed);
        publish_gid(i, gid);
    }
    for w in &st.group_members {
        w.store(0, Ordering::Relaxed);
    }
    for &r in members {
        let r = r as usize;
        st.group_members[r / 64].fetch_or(1 << (r % 64), Ordering::Relaxed);
    }
    // (ordered before the superstep's sequentially consistent store)
    st.group_slot.store(i as u32 + 1, Ordering::Release);
    CommRef(i as u32)
}

/// The group collective is over: nobody needs its members any more.
pub fn group_collective_left() {
    crate::core::state::state()
        .group_slot
        .store(0, std::sync::atomic::Ordering::Relaxed);
}

// ---------------------------------------------------------------------------
// Communicators freed under a pending request. MPI frees such a
// communicator only once its requests are done (they still complete, and
// their messages still arrive); a rebuild must then drain it, make it
// again and post its receives there. So the program's `MPI_Comm_free` of a
// communicator that a pending request names is put off: the program gets
// `MPI_COMM_NULL`, the slot stays, held, and the library frees it (as the
// program's free would have, with what it was before rebuilds) once no
// request names it. Known difference: the delete functions of its
// attributes run then, not in the program's `MPI_Comm_free`.

/// Whether some communicator is held (the one load a request's release
/// pays).
static HELD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn named_by_request(t: &crate::core::handles::Tables, i: usize) -> bool {
    t.requests.iter().any(|(_, r)| r.comm.index() == Some(i))
}

/// At the program's `MPI_Comm_free` of `v`: whether a pending request
/// names it, in which case the slot is now held and MPI is not called.
pub fn hold_if_pending(v: MPI_Comm) -> bool {
    let Some(i) = crate::core::handles::comm_index(v) else {
        return false;
    };
    let _g = lock();
    with_tables(|t| {
        if !named_by_request(t, i) {
            return false;
        }
        match t.comms.get_mut(i) {
            Some(s) if s.is_communicator() && !s.held => {
                s.held = true;
                HELD.store(true, std::sync::atomic::Ordering::Relaxed);
                true
            }
            _ => false,
        }
    })
}

/// Frees the held communicators that no pending request names any more
/// (in the program's calls that free a communicator or release a
/// request; not inside a regroup, since it runs the delete functions of
/// the program's attributes).
pub fn release_held() {
    if !HELD.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let (done, left): (Vec<usize>, bool) = with_tables(|t| {
        let held: Vec<usize> = t
            .comms
            .iter()
            .filter(|(_, s)| s.held)
            .map(|(i, _)| i)
            .collect();
        let n = held.len();
        let done: Vec<usize> = held
            .into_iter()
            .filter(|&i| !named_by_request(t, i))
            .collect();
        let left = done.len() < n;
        (done, left)
    });
    HELD.store(left, std::sync::atomic::Ordering::Relaxed);
    for i in done {
        let mut real =
            with_tables(|t| t.comms.get(i).map(|s| s.real)).unwrap_or(k::MPI_COMM_NULL());
        if real == k::MPI_COMM_NULL() {
            continue;
        }
        // SAFETY: the program's communicator, which it freed and whose
        // requests are done: freed now, as its own free would have.
        let rc = unsafe { crate::sys::PMPI_Comm_free(&mut real) };
        if rc == k::MPI_SUCCESS() {
            crate::core::handles::comm_released(comm_virtual(i), real);
        } else {
            log::warn!("a communicator the program freed could not be freed later ({rc})");
        }
    }
}
