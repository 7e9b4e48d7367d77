//! Recipes: what the library knows of each communicator of the program to
//! make it again on a new world, read from the communicator itself when
//! MPI makes it: the world ranks of its group (and of its remote group for
//! an intercommunicator) and its topology. Making one again from its
//! recipe is the regroup's (`protocol::membership`).
use crate::sys::constants as k;
use crate::sys::*;
use std::ffi::c_int;

#[derive(Clone, Debug, PartialEq)]
pub enum Topology {
    None,
    Cart {
        dims: Vec<c_int>,
        periods: Vec<c_int>,
    },
    Graph {
        index: Vec<c_int>,
        edges: Vec<c_int>,
    },
    DistGraph {
        sources: Vec<c_int>,
        source_weights: Option<Vec<c_int>>,
        destinations: Vec<c_int>,
        destination_weights: Option<Vec<c_int>>,
    },
}

/// How to make a communicator again.
#[derive(Clone, Debug, PartialEq)]
pub struct Recipe {
    /// World ranks of the (local) group, in communicator rank order; `None`
    /// when it holds processes outside the world (spawned, connected).
    pub local: Option<Vec<c_int>>,
    /// For an intercommunicator, the remote group likewise.
    pub remote: Option<Option<Vec<c_int>>>,
    pub topology: Topology,
}

impl Recipe {
    /// Peers a message can go to: the remote group for an
    /// intercommunicator, the group otherwise.
    pub fn peer_count(&self) -> usize {
        let n = |g: &Option<Vec<c_int>>| g.as_ref().map(|v| v.len()).unwrap_or(0);
        match &self.remote {
            Some(r) => n(r),
            None => n(&self.local),
        }
    }

    /// Whether every process is in the world, so it can be rebuilt there.
    pub fn rebuildable(&self) -> bool {
        self.local.is_some() && !matches!(self.remote, Some(None))
    }

    /// Reads the recipe of a real communicator, in ranks of `world` (the
    /// real world of the moment).
    ///
    /// # Safety
    /// `real` and `world` must be live communicators.
    pub unsafe fn of(real: MPI_Comm, world: MPI_Comm) -> Recipe {
        // SAFETY: `real` is a communicator MPI just returned; each call
        // writes only into the out-parameters given.
        unsafe {
            let mut inter: c_int = 0;
            PMPI_Comm_test_inter(real, &mut inter);
            let mut g = k::MPI_GROUP_NULL();
            PMPI_Comm_group(real, &mut g);
            let local = world_ranks(g, world);
            PMPI_Group_free(&mut g);
            let remote = if inter != 0 {
                let mut rg = k::MPI_GROUP_NULL();
                PMPI_Comm_remote_group(real, &mut rg);
                let r = world_ranks(rg, world);
                PMPI_Group_free(&mut rg);
                Some(r)
            } else {
                None
            };
            let topology = if inter != 0 {
                Topology::None
            } else {
                topology_of(real)
            };
            Recipe {
                local,
                remote,
                topology,
            }
        }
    }
}

/// Ranks in `world` (the real world of the moment) of a group's members,
/// or `None` if one of them is not in the world.
///
/// # Safety
/// `g` and `world` must be live.
pub(crate) unsafe fn world_ranks(g: MPI_Group, world: MPI_Comm) -> Option<Vec<c_int>> {
    let mut n: c_int = 0;
    // SAFETY: a live group (see caller).
    unsafe { PMPI_Group_size(g, &mut n) };
    let ranks: Vec<c_int> = (0..n).collect();
    let mut out = vec![0; n as usize];
    let mut wg = k::MPI_GROUP_NULL();
    // SAFETY: the current real world and a live group; arrays of size n.
    unsafe {
        PMPI_Comm_group(world, &mut wg);
        PMPI_Group_translate_ranks(g, n, ranks.as_ptr(), wg, out.as_mut_ptr());
        PMPI_Group_free(&mut wg);
    }
    if out.iter().any(|&r| r == k::MPI_UNDEFINED() || r < 0) {
        None
    } else {
        Some(out)
    }
}

unsafe fn topology_of(real: MPI_Comm) -> Topology {
    let mut status: c_int = k::MPI_UNDEFINED();
    // SAFETY: all calls read a live communicator into buffers sized by the
    // counts MPI reports first.
    unsafe {
        PMPI_Topo_test(real, &mut status);
        if status == k::MPI_CART() {
            let mut nd: c_int = 0;
            PMPI_Cartdim_get(real, &mut nd);
            let mut dims = vec![0; nd as usize];
            let mut periods = vec![0; nd as usize];
            let mut coords = vec![0; nd as usize];
            PMPI_Cart_get(
                real,
                nd,
                dims.as_mut_ptr(),
                periods.as_mut_ptr(),
                coords.as_mut_ptr(),
            );
            Topology::Cart { dims, periods }
        } else if status == k::MPI_GRAPH() {
            let (mut nn, mut ne) = (0, 0);
            PMPI_Graphdims_get(real, &mut nn, &mut ne);
            let mut index = vec![0; nn as usize];
            let mut edges = vec![0; ne as usize];
            PMPI_Graph_get(real, nn, ne, index.as_mut_ptr(), edges.as_mut_ptr());
            Topology::Graph { index, edges }
        } else if status == k::MPI_DIST_GRAPH() {
            let (mut indeg, mut outdeg, mut weighted) = (0, 0, 0);
            PMPI_Dist_graph_neighbors_count(real, &mut indeg, &mut outdeg, &mut weighted);
            let mut sources = vec![0; indeg as usize];
            let mut sw = vec![0; indeg.max(1) as usize];
            let mut destinations = vec![0; outdeg as usize];
            let mut dw = vec![0; outdeg.max(1) as usize];
            PMPI_Dist_graph_neighbors(
                real,
                indeg,
                sources.as_mut_ptr(),
                if weighted != 0 {
                    sw.as_mut_ptr()
                } else {
                    k::MPI_UNWEIGHTED()
                },
                outdeg,
                destinations.as_mut_ptr(),
                if weighted != 0 {
                    dw.as_mut_ptr()
                } else {
                    k::MPI_UNWEIGHTED()
                },
            );
            sw.truncate(indeg as usize);
            dw.truncate(outdeg as usize);
            Topology::DistGraph {
                sources,
                source_weights: (weighted != 0).then_some(sw),
                destinations,
                destination_weights: (weighted != 0).then_some(dw),
            }
        } else {
            Topology::None
        }
    }
}
