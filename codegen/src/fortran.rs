//! The Fortran entry points (`mpif.h`, `use mpi`, `use mpi_f08`) for
//! Open MPI, generated from the same spec as the C wrappers.
//!
//! Open MPI's Fortran library calls `PMPI_*` directly, so the C wrappers
//! never see a Fortran program's calls: the library exports the Fortran
//! symbols itself. Each entry point converts its Fortran arguments to C
//! (handles through the library's virtual Fortran integers, sentinels,
//! statuses, strings with their hidden lengths, 1-based indices) and calls
//! the library's own C wrapper of the same function, which counts the call
//! and does the protocol's bookkeeping: one code path, one count. Every
//! function is exported under the four manglings of `mpif.h` / `use mpi`
//! (`mpi_send_`, `mpi_send__`, `mpi_send`, `MPI_SEND`) and as
//! `ompi_send_f`, which `use mpi_f08`'s module procedures call (those with
//! `LOGICAL` arguments call `pmpi_test_` instead: exported as well).
//!
//! A function whose arguments the generator cannot convert (a Fortran
//! callback, an attribute value, string arrays, ...) gets a forwarding entry
//! point instead (`gen_forward`): the virtual handles it is given become the
//! real handles' Open MPI Fortran integers and Open MPI's own Fortran
//! function runs; the call is counted there.
//!
//! Under MPICH nothing is generated: its Fortran layer calls the C `MPI_*`
//! functions, which the C wrappers already count.
use super::{base_type, Function, Param};
use std::fmt::Write as _;

/// The functions that must get Fortran entry points, by C name (the
/// generator fails if one of them cannot). Every other function of the
/// spec gets one too when the generator converts all its arguments (and it
/// is not in [`DENY`]); the others are forwarded (`gen_forward`). The
/// generated file ends with the lists (see docs/fortran.md).
pub const FORTRAN: &[&str] = &[
    // Environment
    "MPI_Init",
    "MPI_Init_thread",
    "MPI_Initialized",
    "MPI_Finalized",
    "MPI_Finalize",
    "MPI_Query_thread",
    "MPI_Abort",
    "MPI_Wtime",
    "MPI_Wtick",
    "MPI_Get_processor_name",
    "MPI_Error_string",
    "MPI_Error_class",
    // Communicators
    "MPI_Comm_rank",
    "MPI_Comm_size",
    "MPI_Comm_split",
    "MPI_Comm_dup",
    "MPI_Comm_create",
    "MPI_Comm_free",
    "MPI_Comm_compare",
    "MPI_Comm_group",
    "MPI_Comm_remote_size",
    "MPI_Comm_test_inter",
    "MPI_Comm_set_name",
    "MPI_Comm_get_name",
    // Groups
    "MPI_Group_size",
    "MPI_Group_rank",
    "MPI_Group_incl",
    "MPI_Group_excl",
    "MPI_Group_union",
    "MPI_Group_intersection",
    "MPI_Group_difference",
    "MPI_Group_compare",
    "MPI_Group_translate_ranks",
    "MPI_Group_free",
    // Point to point
    "MPI_Send",
    "MPI_Ssend",
    "MPI_Bsend",
    "MPI_Rsend",
    "MPI_Recv",
    "MPI_Isend",
    "MPI_Issend",
    "MPI_Ibsend",
    "MPI_Irsend",
    "MPI_Irecv",
    "MPI_Sendrecv",
    "MPI_Sendrecv_replace",
    "MPI_Probe",
    "MPI_Iprobe",
    "MPI_Get_count",
    "MPI_Get_elements",
    "MPI_Send_init",
    "MPI_Recv_init",
    "MPI_Start",
    "MPI_Startall",
    "MPI_Request_free",
    "MPI_Cancel",
    "MPI_Test_cancelled",
    // Completion
    "MPI_Wait",
    "MPI_Waitall",
    "MPI_Waitany",
    "MPI_Waitsome",
    "MPI_Test",
    "MPI_Testall",
    "MPI_Testany",
    "MPI_Testsome",
    // Collectives
    "MPI_Barrier",
    "MPI_Bcast",
    "MPI_Reduce",
    "MPI_Allreduce",
    "MPI_Gather",
    "MPI_Gatherv",
    "MPI_Scatter",
    "MPI_Scatterv",
    "MPI_Allgather",
    "MPI_Allgatherv",
    "MPI_Alltoall",
    "MPI_Alltoallv",
    "MPI_Reduce_scatter",
    "MPI_Reduce_scatter_block",
    "MPI_Scan",
    "MPI_Exscan",
    "MPI_Ibarrier",
    "MPI_Ibcast",
    "MPI_Ireduce",
    "MPI_Iallreduce",
    "MPI_Iallgather",
    "MPI_Ialltoall",
    // Datatypes
    "MPI_Type_contiguous",
    "MPI_Type_vector",
    "MPI_Type_create_hvector",
    "MPI_Type_indexed",
    "MPI_Type_create_indexed_block",
    "MPI_Type_create_struct",
    "MPI_Type_create_resized",
    "MPI_Type_dup",
    "MPI_Type_commit",
    "MPI_Type_free",
    "MPI_Type_size",
    "MPI_Type_get_extent",
    "MPI_Op_free",
    // Topologies
    "MPI_Dims_create",
    "MPI_Cart_create",
    "MPI_Cart_coords",
    "MPI_Cart_rank",
    "MPI_Cart_shift",
    "MPI_Cart_sub",
    "MPI_Cart_get",
    "MPI_Cartdim_get",
];

/// Functions whose `use mpi_f08` module procedure calls the `mpif.h`
/// profiling entry point (`pmpi_test_`) instead of `ompi_test_f`: those
/// with `LOGICAL` arguments (Open MPI 4.1's `libmpi_usempif08.so`). They
/// are exported under that name too, or `mpi_f08` calls of them would miss
/// the library.
const F08_VIA_PMPI: &[&str] = &[
    "MPI_Cart_create",
    "MPI_Cart_get",
    "MPI_Cart_map",
    "MPI_Cart_sub",
    "MPI_Comm_test_inter",
    "MPI_File_get_atomicity",
    "MPI_File_set_atomicity",
    "MPI_Finalized",
    "MPI_Graph_create",
    "MPI_Improbe",
    "MPI_Info_get",
    "MPI_Info_get_valuelen",
    "MPI_Initialized",
    "MPI_Intercomm_merge",
    "MPI_Iprobe",
    "MPI_Is_thread_main",
    "MPI_Op_commutative",
    "MPI_Request_get_status",
    "MPI_Status_set_cancelled",
    "MPI_Test",
    "MPI_Test_cancelled",
    "MPI_Testall",
    "MPI_Testany",
    "MPI_Testsome",
    "MPI_Win_test",
];

/// Functions whose Fortran binding means something else than the C one
/// (addresses as integers, memory the MPI allocates, results written
/// later): forwarded to Open MPI's own.
const DENY: &[(&str, &str)] = &[
    (
        "MPI_Alloc_mem",
        "Fortran gets the memory through a C pointer",
    ),
    ("MPI_Free_mem", "pairs with MPI_Alloc_mem"),
    (
        "MPI_Win_allocate",
        "Fortran gets the memory through a C pointer",
    ),
    (
        "MPI_Win_allocate_shared",
        "Fortran gets the memory through a C pointer",
    ),
    (
        "MPI_Win_shared_query",
        "Fortran gets the memory through a C pointer",
    ),
    (
        "MPI_Buffer_attach",
        "the buffer must stay where Fortran put it (the library's C wrapper keeps it)",
    ),
    ("MPI_Buffer_detach", "returns the buffer's address"),
    (
        "MPI_Comm_idup",
        "the new communicator is written when the request completes, into the caller's variable",
    ),
    (
        "MPI_Comm_idup_with_info",
        "the new communicator is written when the request completes, into the caller's variable",
    ),
];

/// Handles MPI's own Fortran integers stand for (not virtual).
fn plain_family(base: &str) -> Option<&'static str> {
    Some(match base {
        "MPI_Info" => "Info",
        "MPI_Win" => "Win",
        "MPI_File" => "File",
        "MPI_Errhandler" => "Errhandler",
        "MPI_Message" => "Message",
        _ => return None,
    })
}

/// Handle families converted through the library's Fortran integers
/// (`special::fortran`).
fn virtual_family(base: &str) -> Option<&'static str> {
    Some(match base {
        "MPI_Comm" => "comm",
        "MPI_Group" => "group",
        "MPI_Request" => "request",
        "MPI_Datatype" => "datatype",
        "MPI_Op" => "op",
        _ => return None,
    })
}

fn null_of(fam: &str) -> &'static str {
    match fam {
        "comm" => "k::MPI_COMM_NULL()",
        "group" => "k::MPI_GROUP_NULL()",
        "request" => "k::MPI_REQUEST_NULL()",
        "datatype" => "k::MPI_DATATYPE_NULL()",
        "op" => "k::MPI_OP_NULL()",
        _ => unreachable!(),
    }
}

/// Integer-like C types a Fortran argument carries by reference.
fn scalar_type(base: &str) -> Option<&'static str> {
    Some(match base {
        "int" => "MPI_Fint",
        "MPI_Aint" => "sys::MPI_Aint",
        "MPI_Count" => "sys::MPI_Count",
        "MPI_Offset" => "sys::MPI_Offset",
        _ => return None,
    })
}

fn id(name: &str) -> String {
    super::ident(name)
}

/// Functions whose `INDEX` results are 0-based in C and 1-based in Fortran.
const INDEX_RESULTS: &[&str] = &["MPI_Waitany", "MPI_Testany", "MPI_Waitsome", "MPI_Testsome"];

struct Gen {
    /// Under MPICH (whose plain handles are integers in C too, but for
    /// `MPI_File`) rather than Open MPI.
    mpich: bool,
    /// The entry point's parameters (Rust).
    params: Vec<String>,
    /// Hidden string lengths, after `ierror`.
    hidden: Vec<String>,
    pre: String,
    args: Vec<String>,
    /// After a successful call.
    post: String,
}

fn gen_param(f: &Function, p: &Param, g: &mut Gen) -> Result<(), String> {
    let (base, stars) = base_type(&p.ctype);
    let n = id(&p.name);
    // MPI_Init's argc/argv are not in the Fortran binding.
    if p.kind == "ARGUMENT_COUNT" || p.kind == "ARGUMENT_LIST" {
        if !f.name.starts_with("MPI_Init") {
            return Err(format!("argument lists ({})", p.name));
        }
        g.args.push("std::ptr::null_mut()".into());
        return Ok(());
    }
    let has = |name: &str| f.params.iter().any(|q| q.name == name);
    if let Some(fam) = virtual_family(base) {
        g.params.push(format!("{n}: *mut MPI_Fint"));
        match (stars, &p.length) {
            (0, _) => g.args.push(format!("fortran::{fam}_f2c(*{n})")),
            (1, None) => {
                let init = if p.dir == "out" {
                    null_of(fam).to_string()
                } else {
                    format!("fortran::{fam}_f2c(*{n})")
                };
                writeln!(g.pre, "    let mut {n}_c = {init};").unwrap();
                g.args.push(format!("&mut {n}_c"));
                if p.dir != "in" {
                    writeln!(g.post, "        *{n} = fortran::{fam}_c2f({n}_c);").unwrap();
                }
            }
            (1, Some(len)) => {
                if !has(len) {
                    return Err(format!("an array of handles of length {len} ({})", p.name));
                }
                let len = id(len);
                let init = if p.dir == "out" {
                    null_of(fam).to_string()
                } else {
                    format!("fortran::{fam}_f2c(*{n}.add(i))")
                };
                let i = if p.dir == "out" { "_" } else { "i" };
                writeln!(
                    g.pre,
                    "    let mut {n}_c: Vec<_> = (0..fs::len({len})).map(|{i}| {init}).collect();"
                )
                .unwrap();
                g.args.push(format!("{n}_c.as_mut_ptr()"));
                if p.dir != "in" {
                    writeln!(
                        g.post,
                        "        for (i, h) in {n}_c.iter().enumerate() {{ *{n}.add(i) = fortran::{fam}_c2f(*h); }}"
                    )
                    .unwrap();
                }
            }
            _ => return Err(format!("handle parameter {}", p.name)),
        }
        return Ok(());
    }
    if let Some(fam) = plain_family(base) {
        // Not virtual: MPI's own Fortran integers. MPICH's conversions are
        // casts (macros in its mpi.h), but for `MPI_File` (a pointer there).
        g.params.push(format!("{n}: *mut MPI_Fint"));
        let (f2c, c2f) = if g.mpich && fam != "File" {
            (
                format!("(*{n}) as sys::MPI_{fam}"),
                format!("{n}_c as MPI_Fint"),
            )
        } else {
            (
                format!("sys::PMPI_{fam}_f2c(*{n})"),
                format!("sys::PMPI_{fam}_c2f({n}_c)"),
            )
        };
        match (stars, &p.length) {
            (0, _) => g.args.push(f2c),
            (1, None) => {
                let init = if p.dir == "out" {
                    // SAFETY-free: a handle's all-zero bits, overwritten by MPI.
                    "std::mem::zeroed()".to_string()
                } else {
                    f2c
                };
                writeln!(g.pre, "    let mut {n}_c: sys::MPI_{fam} = {init};").unwrap();
                g.args.push(format!("&mut {n}_c"));
                if p.dir != "in" {
                    writeln!(g.post, "        *{n} = {c2f};").unwrap();
                }
            }
            _ => return Err(format!("an array of {fam} handles ({})", p.name)),
        }
        return Ok(());
    }
    match (p.kind.as_str(), base, stars) {
        ("WEIGHT", _, _) => {
            // MPI_UNWEIGHTED / MPI_WEIGHTS_EMPTY are sentinels too: not
            // recognized yet.
            return Err(format!("weights ({})", p.name));
        }
        ("BUFFER", "void", 1) => {
            g.params.push(format!("{n}: *mut c_void"));
            g.args.push(format!("fs::buf({n})"));
        }
        ("STATUS", "MPI_Status", 1) => {
            g.params.push(format!("{n}: *mut MPI_Fint"));
            let array = p.length.is_some();
            if p.dir == "in" {
                if array {
                    return Err("an array of statuses as input".into());
                }
                writeln!(g.pre, "    let {n}_c = fs::status_f2c({n});").unwrap();
                g.args.push(format!("&{n}_c as *const _ as *mut _"));
            } else if p.dir == "inout" {
                if array {
                    return Err("an array of statuses as input".into());
                }
                writeln!(g.pre, "    let mut {n}_c = fs::status_f2c({n});").unwrap();
                g.args.push(format!("&mut {n}_c"));
                writeln!(g.post, "        fs::status_c2f(&{n}_c, {n});").unwrap();
            } else if !array {
                writeln!(g.pre, "    let mut {n}_c = fs::status_new();").unwrap();
                writeln!(g.pre, "    let {n}_ignored = fs::status_ignored({n});").unwrap();
                g.args.push(format!(
                    "if {n}_ignored {{ k::MPI_STATUS_IGNORE() }} else {{ &mut {n}_c }}"
                ));
                writeln!(
                    g.post,
                    "        if !{n}_ignored {{ fs::status_c2f(&{n}_c, {n}); }}"
                )
                .unwrap();
            } else {
                // As many as the requests; those written are told by the
                // function's other results.
                let count = if f.params.iter().any(|q| q.name == "incount") {
                    "incount"
                } else {
                    "count"
                };
                let written = match f.name.as_str() {
                    "MPI_Waitall" => format!("fs::len({count})"),
                    "MPI_Testall" => format!("if *flag != 0 {{ fs::len({count}) }} else {{ 0 }}"),
                    "MPI_Waitsome" | "MPI_Testsome" => "fs::len(outcount)".to_string(),
                    _ => return Err("an array of statuses".into()),
                };
                writeln!(g.pre, "    let {n}_ignored = fs::statuses_ignored({n});").unwrap();
                writeln!(
                    g.pre,
                    "    let mut {n}_c = vec![fs::status_new(); if {n}_ignored {{ 0 }} else {{ fs::len({count}) }}];"
                )
                .unwrap();
                g.args.push(format!(
                    "if {n}_ignored {{ k::MPI_STATUSES_IGNORE() }} else {{ {n}_c.as_mut_ptr() }}"
                ));
                writeln!(
                    g.post,
                    "        if !{n}_ignored {{ fs::statuses_c2f(&{n}_c, {written}, {n}); }}"
                )
                .unwrap();
            }
        }
        ("STRING", "char", 1) => {
            g.params.push(format!("{n}: *mut c_char"));
            g.hidden.push(format!("{n}_len: usize"));
            if p.dir == "in" {
                writeln!(g.pre, "    let {n}_c = fs::string_in({n}, {n}_len);").unwrap();
                g.args.push(format!("{n}_c.as_ptr() as _"));
            } else {
                writeln!(g.pre, "    let mut {n}_c = fs::string_buffer({n}_len);").unwrap();
                g.args.push(format!("{n}_c.as_mut_ptr() as _"));
                // Untouched when MPI says there is nothing (`flag` false:
                // MPI_Info_get, MPI_Info_get_nthkey's siblings).
                let flag = f
                    .params
                    .iter()
                    .any(|q| q.name == "flag" && q.kind == "LOGICAL" && q.dir == "out");
                let when = if flag { "if *flag != 0 " } else { "" };
                writeln!(
                    g.post,
                    "        {when}{{ fs::string_out(&{n}_c, {n}, {n}_len); }}"
                )
                .unwrap();
            }
        }
        ("INDEX", "int", 1) if INDEX_RESULTS.contains(&f.name.as_str()) => {
            g.params.push(format!("{n}: *mut MPI_Fint"));
            g.args.push(format!("{n} as _"));
            let how_many = if p.length.is_some() { "*outcount" } else { "1" };
            writeln!(g.post, "        fs::indices_to_fortran({n}, {how_many});").unwrap();
        }
        (_, b, 0) if scalar_type(b).is_some() => {
            g.params
                .push(format!("{n}: *mut {}", scalar_type(b).unwrap()));
            g.args.push(format!("*{n}"));
        }
        (_, b, 1) if scalar_type(b).is_some() => {
            // Integers (and LOGICALs: `.TRUE.` is 1) by reference, scalars
            // or arrays: the same bits in C.
            g.params
                .push(format!("{n}: *mut {}", scalar_type(b).unwrap()));
            g.args.push(format!("{n} as _"));
        }
        _ => {
            return Err(format!(
                "parameter {} ({}, {}) has no Fortran conversion",
                p.name, p.kind, p.ctype
            ))
        }
    }
    Ok(())
}

/// Open MPI's names of a function's entry point: the four manglings of
/// `mpif.h`, `ompi_x_f` (`use mpi_f08`), and `pmpi_x_` for those of
/// [`F08_VIA_PMPI`].
fn openmpi_names(f: &Function) -> Vec<String> {
    let lower = f.name.to_ascii_lowercase();
    let stem = lower.strip_prefix("mpi_").unwrap();
    let mut names = vec![
        format!("{lower}_"),
        format!("{lower}__"),
        lower.clone(),
        f.name.to_ascii_uppercase(),
        format!("ompi_{stem}_f"),
    ];
    if F08_VIA_PMPI.contains(&f.name.as_str()) {
        names.push(format!("p{lower}_"));
    }
    names
}

/// A converted entry point: `body` is the name of its body (the function's
/// C name under Open MPI), exported under `names`.
fn gen_function(
    f: &Function,
    out: &mut String,
    mpich: bool,
    body: &str,
    names: &[String],
) -> Result<(), String> {
    if f.variadic {
        return Err("variadic".into());
    }
    if let Some(why) = DENY.iter().find(|(n, _)| *n == f.name).map(|(_, w)| w) {
        return Err(why.to_string());
    }
    let lower = f.name.to_ascii_lowercase();
    let cfg = format!("#[cfg(ferry_has = \"{}\")]", f.name);
    if f.ret == "double" && f.params.is_empty() {
        for (i, name) in names.iter().enumerate() {
            writeln!(out, "{cfg}\n#[export_name = \"{name}\"]").unwrap();
            writeln!(
                out,
                "pub unsafe extern \"C\" fn f{i}_{body}() -> f64 {{\n    crate::calls::boundary::guard_uncounted(\"{lower}\", 0.0, || super::generated::{}())\n}}\n",
                f.name
            )
            .unwrap();
        }
        return Ok(());
    }
    if f.ret != "int" {
        return Err(format!("returns {} (a Fortran function)", f.ret));
    }
    let mut g = Gen {
        mpich,
        params: Vec::new(),
        hidden: Vec::new(),
        pre: String::new(),
        args: Vec::new(),
        post: String::new(),
    };
    for p in &f.params {
        gen_param(f, p, &mut g)?;
    }
    let mut params = g.params.clone();
    params.push("ierror: *mut MPI_Fint".into());
    params.extend(g.hidden.iter().cloned());
    let param_list = params.join(", ");
    let arg_names: Vec<String> = params
        .iter()
        .map(|p| p.split(':').next().unwrap().to_string())
        .collect();
    // The body, once.
    writeln!(out, "{cfg}").unwrap();
    writeln!(out, "unsafe fn {body}({param_list}) {{").unwrap();
    writeln!(out, "    fs::entry(\"{lower}\", ierror, || {{").unwrap();
    for line in g.pre.lines() {
        writeln!(out, "    {line}").unwrap();
    }
    writeln!(
        out,
        "        let rc = super::generated::{}({});",
        f.name,
        g.args.join(", ")
    )
    .unwrap();
    if !g.post.is_empty() {
        // With MPI_ERR_IN_STATUS the requests of an array completed (or
        // not) one by one and the statuses say how: written back too.
        let status_array = f
            .params
            .iter()
            .any(|p| p.kind == "STATUS" && p.length.is_some());
        let ok = if status_array {
            "rc == k::MPI_SUCCESS() || rc == k::MPI_ERR_IN_STATUS()"
        } else {
            "rc == k::MPI_SUCCESS()"
        };
        writeln!(out, "        if {ok} {{").unwrap();
        for line in g.post.lines() {
            writeln!(out, "    {line}").unwrap();
        }
        writeln!(out, "        }}").unwrap();
    }
    writeln!(out, "        rc\n    }})\n}}\n").unwrap();
    // The exported names.
    write_exports(out, &cfg, names, body, &param_list, &arg_names);
    Ok(())
}

/// C-only functions (conversions between languages): no Fortran binding.
/// The exported names of one entry point (every mangling), each a thin
/// function calling the entry point's body `fname`.
fn write_exports(
    out: &mut String,
    cfg: &str,
    names: &[String],
    fname: &str,
    param_list: &str,
    arg_names: &[String],
) {
    for (i, name) in names.iter().enumerate() {
        writeln!(out, "{cfg}\n#[export_name = \"{name}\"]").unwrap();
        writeln!(
            out,
            "pub unsafe extern \"C\" fn f{i}_{fname}({param_list}) {{\n    {fname}({})\n}}\n",
            arg_names.join(", ")
        )
        .unwrap();
    }
}

fn c_only(name: &str) -> bool {
    [
        "_c2f", "_f2c", "_c2f08", "_f082c", "_f082f", "_f2f08", "_toint", "_fromint",
    ]
    .iter()
    .any(|sfx| name.ends_with(sfx))
}

/// A forwarding entry point, for a function whose arguments the library does
/// not convert: the MPI's own Fortran implementation (`target`: Open MPI's
/// `ompi_x_f`, MPICH's `pmpi_x_` or `mpi_x_f08_`, found with
/// `dlsym(RTLD_NEXT)`) does the work, given the real Fortran integers of
/// the virtual handles the call takes; the call is counted (the library's
/// C wrapper is not involved: a collective or message of such a call is not
/// seen by the protocol). Handles it returns are MPI's own. `body` and
/// `names` as for [`gen_function`].
fn gen_forward(
    f: &Function,
    out: &mut String,
    target: &str,
    body: &str,
    names: &[String],
) -> Result<(), String> {
    if f.variadic {
        return Err("variadic".into());
    }
    if f.ret != "int" {
        return Err(format!("returns {} (a Fortran function)", f.ret));
    }
    if c_only(&f.name) {
        return Err("C only".into());
    }
    let lower = f.name.to_ascii_lowercase();
    let mut params = Vec::new();
    let mut args = Vec::new();
    let mut pre = String::new();
    let mut post = String::new();
    let mut hidden = 0;
    let comm_param = f
        .params
        .iter()
        .find(|q| base_type(&q.ctype) == ("MPI_Comm", 0))
        .map(|q| id(&q.name));
    for p in &f.params {
        if p.kind == "ARGUMENT_COUNT" || p.kind == "ARGUMENT_LIST" {
            return Err(format!("argument lists ({})", p.name));
        }
        let n = id(&p.name);
        let (base, stars) = base_type(&p.ctype);
        if base == "char" {
            hidden += 1;
        }
        params.push(format!("{n}: *mut MPI_Fint"));
        match (virtual_family(base), stars, &p.length) {
            (Some(fam), 0, _) | (Some(fam), 1, None) if p.dir == "in" => {
                writeln!(pre, "    let {n}_f = fs::real_fint_{fam}(*{n});").unwrap();
                args.push(format!("&{n}_f as *const MPI_Fint as *mut MPI_Fint"));
            }
            (Some(fam), 1, None) if p.dir == "inout" => {
                writeln!(pre, "    let mut {n}_f = fs::real_fint_{fam}(*{n});").unwrap();
                args.push(format!("&mut {n}_f"));
                writeln!(post, "    *{n} = fs::program_fint_{fam}({n}_f);").unwrap();
            }
            (Some(fam), 1, Some(len)) if p.dir == "in" => {
                let len = if f.params.iter().any(|q| &q.name == len) {
                    format!("fs::len({})", id(len))
                } else if len == "*" && comm_param.is_some() {
                    let which = if p.name.starts_with("send") { 0 } else { 1 };
                    format!(
                        "fs::peers(*{}, {}).{which}",
                        comm_param.as_ref().unwrap(),
                        f.name.contains("eighbor")
                    )
                } else {
                    return Err(format!("an array of handles of length {len} ({})", p.name));
                };
                writeln!(
                    pre,
                    "    let mut {n}_f: Vec<MPI_Fint> = (0..{len}).map(|i| fs::real_fint_{fam}(*{n}.add(i))).collect();"
                )
                .unwrap();
                args.push(format!("{n}_f.as_mut_ptr()"));
            }
            // Handles made by the call, and everything else: as they are.
            _ => args.push(n),
        }
    }
    if FORWARDED_MAKERS.contains(&f.name.as_str()) {
        // An object the library will not know: a process image refuses it.
        writeln!(
            post,
            "    crate::core::objects::forwarded_made(\"{}\");",
            f.name
        )
        .unwrap();
    }
    if matches!(
        f.name.as_str(),
        "MPI_Comm_create_keyval" | "MPI_Keyval_create"
    ) {
        // Recorded, so that its attributes are carried over rebuilds.
        let kv = f
            .params
            .iter()
            .find(|q| q.dir == "out" && q.name.ends_with("keyval"))
            .map(|q| id(&q.name))
            .ok_or("no keyval out-parameter")?;
        writeln!(
            post,
            "    crate::entry::special::fortran_keyval_made(*{kv});"
        )
        .unwrap();
    }
    params.push("ierror: *mut MPI_Fint".into());
    args.push("ierror".into());
    for i in 0..hidden {
        params.push(format!("len{i}: usize"));
        args.push(format!("len{i}"));
    }
    let param_list = params.join(", ");
    let arg_names: Vec<String> = params
        .iter()
        .map(|p| p.split(':').next().unwrap().to_string())
        .collect();
    let target_ty = format!(
        "unsafe extern \"C\" fn({})",
        params
            .iter()
            .map(|p| p.split(": ").nth(1).unwrap().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let cfg = format!("#[cfg(ferry_has = \"{}\")]", f.name);
    writeln!(out, "{cfg}").unwrap();
    writeln!(out, "unsafe fn {body}({param_list}) {{").unwrap();
    writeln!(
        out,
        "    static TARGET: fs::Next = fs::Next::new(\"{target}\\0\");"
    )
    .unwrap();
    writeln!(
        out,
        "    fs::forward(\"{lower}\", ierror, || {{\n        let Some(target) = TARGET.get() else {{ return fs::missing(\"{target}\"); }};\n        let target: {target_ty} = std::mem::transmute(target);"
    )
    .unwrap();
    // A collective counts its superstep as the C wrapper's does: the
    // synchronization must know a rank is inside it (or the others freeze
    // in front of it and it waits for ever). Entered before the handles are
    // made real: a regroup at the entry replaces the communicator.
    let collective = crate::template_of(&f.name) == crate::Template::Collective;
    let ticket = match (&comm_param, collective) {
        (Some(c), true) => {
            writeln!(
                out,
                "        let ticket = crate::core::superstep::enter_collective(fs::comm_slot(*{c}));"
            )
            .unwrap();
            true
        }
        _ => false,
    };
    for line in pre.lines() {
        writeln!(out, "    {line}").unwrap();
    }
    writeln!(out, "        target({});", args.join(", ")).unwrap();
    if ticket {
        writeln!(
            out,
            "        crate::core::superstep::leave_collective(ticket);"
        )
        .unwrap();
    }
    writeln!(
        out,
        "        let rc = if ierror.is_null() {{ k::MPI_SUCCESS() }} else {{ *ierror }};"
    )
    .unwrap();
    if !post.is_empty() {
        writeln!(out, "        if rc == k::MPI_SUCCESS() {{").unwrap();
        for line in post.lines() {
            writeln!(out, "        {line}").unwrap();
        }
        writeln!(out, "        }}").unwrap();
    }
    writeln!(out, "        rc\n    }})\n}}\n").unwrap();
    write_exports(out, &cfg, names, body, &param_list, &arg_names);
    Ok(())
}

/// Forwarded functions that make an object the program then uses by a
/// handle the library never sees (nor its release): counted, so that a
/// process image refuses a process that made one
/// (`objects::forwarded_made`). Keyvals are counted as the program's own
/// (`special::fortran_keyval_made`).
const FORWARDED_MAKERS: &[&str] = &[
    "MPI_Op_create",
    "MPI_Comm_idup",
    "MPI_Comm_idup_with_info",
    "MPI_Comm_spawn",
    "MPI_Comm_spawn_multiple",
    "MPI_Dist_graph_create",
    "MPI_Dist_graph_create_adjacent",
    "MPI_Win_allocate",
    "MPI_Win_allocate_shared",
    "MPI_Comm_create_errhandler",
    "MPI_Errhandler_create",
    "MPI_File_create_errhandler",
    "MPI_Win_create_errhandler",
    "MPI_Type_create_keyval",
    "MPI_Win_create_keyval",
    "MPI_Grequest_start",
];

/// The generated `src/entry/wrappers/fortran.rs`.
pub fn generate(functions: &[Function], source: &str) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "// @generated by ferry-codegen from spec/mpi-c-api.json ({source}).\n// Do not edit: change codegen/src/fortran.rs and run `cargo run -p ferry-codegen`.\n"
    )
    .unwrap();
    out.push_str(
        "//! Fortran entry points under Open MPI (see codegen/src/fortran.rs).\n\
         #![allow(non_snake_case, unused_mut, unused_imports, clippy::all)]\n\
         use super::fortran_support as fs;\n\
         use crate::entry::special::fortran;\n\
         use crate::sys::{self, constants as k, MPI_Fint};\n\
         use std::ffi::{c_char, c_void};\n\n",
    );
    let mut covered = 0;
    let mut skipped: Vec<(String, String)> = Vec::new();
    let mut forwarded: Vec<(String, String)> = Vec::new();
    for f in functions {
        let name = f.name.as_str();
        let required = FORTRAN.contains(&name);
        // Large-count `_c` forms, the tool interface and extensions have no
        // `mpif.h` binding.
        if !required
            && (name.ends_with("_c") || name.starts_with("MPI_T_") || name.starts_with("MPIX_"))
        {
            continue;
        }
        let mut text = String::new();
        let names = openmpi_names(f);
        match gen_function(f, &mut text, false, name, &names) {
            Ok(()) => {
                out.push_str(&text);
                covered += 1;
            }
            Err(why) if !required => {
                let mut text = String::new();
                let stem = name.to_ascii_lowercase();
                let target = format!("ompi_{}_f", stem.strip_prefix("mpi_").unwrap());
                match gen_forward(f, &mut text, &target, name, &names) {
                    Ok(()) => {
                        out.push_str(&text);
                        forwarded.push((f.name.clone(), why));
                    }
                    Err(no) => skipped.push((f.name.clone(), no)),
                }
            }
            Err(why) => panic!("{name} must have a Fortran entry point: {why}"),
        }
    }
    for name in FORTRAN {
        assert!(
            functions.iter().any(|f| f.name == *name),
            "{name} is not in the spec"
        );
    }
    writeln!(
        out,
        "// {} functions, each under 5 names (mpi_x_, mpi_x__, mpi_x, MPI_X, ompi_x_f), {} also as pmpi_x_ (mpi_f08).",
        covered + forwarded.len(),
        F08_VIA_PMPI.len()
    )
    .unwrap();
    writeln!(
        out,
        "// {} of them forwarded to Open MPI's own (handles given made real, counted; see docs/fortran.md):",
        forwarded.len()
    )
    .unwrap();
    write_reasons(&mut out, None, &forwarded);
    write_reasons(
        &mut out,
        Some("Without a Fortran entry point (no Fortran binding, or a Fortran function):"),
        &skipped,
    );
    out
}

/// A listing of functions with the reason for each, in the generated
/// file's closing comment, under `heading` if any.
fn write_reasons(out: &mut String, heading: Option<&str>, list: &[(String, String)]) {
    if let Some(h) = heading {
        writeln!(out, "// {h}").unwrap();
    }
    for (name, why) in list {
        writeln!(out, "//   {name}: {why}").unwrap();
    }
}

/// `mpif.h` / `use mpi` functions that get entry points under MPICH,
/// forwarded to MPICH's own (`pmpi_x_`) with real handles (the others run
/// MPICH's own, which calls the C `MPI_X`, counted by the C wrappers):
/// * the attribute calls, whose MPICH implementation does not call the C
///   function but MPICH's internals with the handle it is given
///   (`MPII_Comm_set_attr`, ...: found in MPICH 4.0.2's `libmpichfort.so`,
///   where every other `pmpi_x_` calls `MPI_X`);
/// * the creation of communicator keyvals, whose Fortran callbacks MPICH
///   calls through a Fortran proxy it sets after `MPI_Comm_create_keyval`:
///   the C wrapper reached while forwarding neither counts the call again
///   nor puts its C trampolines in place of the Fortran functions.
pub const MPICH_F77_FORWARD: &[&str] = &[
    "MPI_Attr_get",
    "MPI_Attr_put",
    "MPI_Comm_get_attr",
    "MPI_Comm_set_attr",
    "MPI_Type_get_attr",
    "MPI_Type_set_attr",
    "MPI_Win_get_attr",
    "MPI_Win_set_attr",
    "MPI_Comm_create_keyval",
    "MPI_Keyval_create",
];

/// The generated `src/entry/wrappers/fortran_mpich.rs`: the Fortran entry points
/// under MPICH.
///
/// MPICH's `mpif.h` layer converts its arguments itself and calls the C
/// `MPI_*` functions (counted by the C wrappers; a Fortran handle is the C
/// handle, ferry's virtual one), but for [`MPICH_F77_FORWARD`]. Its
/// `use mpi_f08` layer calls the C `MPI_*` functions for the procedures
/// with a choice buffer (`mpi_send_f08ts_`) but `PMPI_*` for all the others
/// (`mpi_comm_rank_f08_`): those would go uncounted, with ferry's virtual
/// handles handed to MPICH. So every function without a choice buffer gets
/// an entry point under MPICH's `use mpi_f08` name (`mpi_x_f08_`, and
/// `mpi_x_f08_large_` for the large-count `_c` forms), converted the same
/// way as Open MPI's (a `type(MPI_Comm)` is its integer, a `type(MPI_Status)`
/// is C's status) or forwarded to MPICH's own.
pub fn generate_mpich(functions: &[Function], source: &str) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "// @generated by ferry-codegen from spec/mpi-c-api.json ({source}).\n// Do not edit: change codegen/src/fortran.rs and run `cargo run -p ferry-codegen`.\n"
    )
    .unwrap();
    out.push_str(
        "//! Fortran entry points under MPICH (see codegen/src/fortran.rs, `generate_mpich`).\n\
         #![allow(non_snake_case, unused_mut, unused_imports, clippy::all)]\n\
         use super::fortran_support as fs;\n\
         use crate::entry::special::fortran;\n\
         use crate::sys::{self, constants as k, MPI_Fint};\n\
         use std::ffi::{c_char, c_void};\n\n",
    );
    let mut covered = 0;
    let mut forwarded: Vec<(String, String)> = Vec::new();
    let mut skipped: Vec<(String, String)> = Vec::new();
    // mpif.h: the functions MPICH's own layer does not route through C, and
    // keyval creation.
    for name in MPICH_F77_FORWARD {
        let f = functions
            .iter()
            .find(|f| f.name == *name)
            .unwrap_or_else(|| panic!("{name} is not in the spec"));
        let lower = f.name.to_ascii_lowercase();
        let names = vec![
            format!("{lower}_"),
            format!("{lower}__"),
            lower.clone(),
            f.name.to_ascii_uppercase(),
        ];
        let body = format!("{}_f77", f.name);
        let target = format!("p{lower}_");
        if let Err(e) = gen_forward(f, &mut out, &target, &body, &names) {
            panic!("{name}: cannot forward: {e}");
        }
    }
    // use mpi_f08: every function without a choice buffer.
    for f in functions {
        let name = f.name.as_str();
        if name.starts_with("MPI_T_")
            || name.starts_with("MPIX_")
            || c_only(name)
            || f.params.iter().any(|p| p.kind == "BUFFER")
        {
            continue;
        }
        let lower = name.to_ascii_lowercase();
        let stem = lower.strip_prefix("mpi_").unwrap();
        let export = match stem.strip_suffix("_c") {
            Some(s) => format!("mpi_{s}_f08_large_"),
            None => format!("mpi_{stem}_f08_"),
        };
        let names = vec![export.clone()];
        let body = format!("{name}_f08");
        let mut text = String::new();
        match gen_function(f, &mut text, true, &body, &names) {
            Ok(()) => {
                out.push_str(&text);
                covered += 1;
            }
            Err(why) => {
                let mut text = String::new();
                match gen_forward(f, &mut text, &export, &body, &names) {
                    Ok(()) => {
                        out.push_str(&text);
                        forwarded.push((name.to_string(), why));
                    }
                    Err(no) => skipped.push((name.to_string(), no)),
                }
            }
        }
    }
    writeln!(
        out,
        "// {} mpif.h functions forwarded to MPICH's own (pmpi_x_, with real handles, counted): {}.",
        MPICH_F77_FORWARD.len(),
        MPICH_F77_FORWARD.join(", ")
    )
    .unwrap();
    writeln!(
        out,
        "// {} use mpi_f08 functions (mpi_x_f08_, mpi_x_f08_large_), {} of them forwarded to MPICH's own (handles given made real, counted):",
        covered + forwarded.len(),
        forwarded.len()
    )
    .unwrap();
    write_reasons(&mut out, None, &forwarded);
    write_reasons(
        &mut out,
        Some("Without a use mpi_f08 entry point (MPICH's own runs, uncounted):"),
        &skipped,
    );
    out
}
