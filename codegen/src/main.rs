//! ferry's wrapper generator.
//!
//! Reads `spec/mpi-c-api.json` (the MPI Forum's C API, snapshotted from
//! `pympistandard` by `codegen/extract_spec.py`) and writes
//! `src/entry/wrappers/generated.rs`: one exported `MPI_*` function per C binding,
//! each calling the real library through `PMPI_*` with the library's
//! bookkeeping around it. What each wrapper does follows from its
//! parameters' kinds (communicator, group, request handles are translated
//! between the program's virtual handles and the real ones) and from a
//! small table of templates for the calls the protocol must see
//! (collectives, sends, receives, probes).
//!
//! `ferry-codegen` writes the file; `ferry-codegen --check` fails when the
//! committed file differs from what the generator produces (a test runs it).
mod fortran;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
struct Spec {
    source: String,
    functions: Vec<Function>,
}

#[derive(Deserialize, Clone)]
struct Function {
    name: String,
    ret: String,
    variadic: bool,
    params: Vec<Param>,
    #[serde(default)]
    removed: bool,
    #[serde(default)]
    extension: bool,
}

#[derive(Deserialize, Clone)]
struct Param {
    name: String,
    ctype: String,
    kind: String,
    dir: String,
    /// The length of an array parameter (a parameter's name, a constant or
    /// `*`); `None` for a scalar.
    #[serde(default)]
    length: Option<String>,
}

/// How a wrapper's body is built.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Template {
    /// Handles translated, nothing else.
    Plain,
    /// A collective operation on its communicator: counts a superstep.
    Collective,
    /// A blocking send: counts the message on its channel.
    Send,
    /// A nonblocking send: counts it and registers the request.
    Isend,
    /// A persistent send: the message is counted at each start.
    SendInit,
    /// A nonblocking receive: the request completes through the library.
    Irecv,
    /// A persistent receive.
    RecvInit,
    /// A blocking receive, made wakeable.
    Recv,
    /// A blocking probe, made wakeable.
    Probe,
    Iprobe,
    /// A blocking matched probe, made wakeable.
    Mprobe,
    /// A nonblocking matched probe: the message remembers its channel.
    Improbe,
    /// A blocking receive of a matched message.
    Mrecv,
    /// A nonblocking receive of a matched message.
    Imrecv,
    /// A blocking send-receive.
    Sendrecv,
    /// A nonblocking send-receive: counts the send, completes as a receive.
    Isendrecv,
    /// Hand-written in `crate::entry::special`.
    Special,
}

/// Functions whose body is written by hand (in `src/entry/special.rs` and the
/// modules it calls): initialization, completion of requests, handle
/// conversion to and from Fortran, and the few with callbacks or variadic
/// arguments.
const SPECIAL: &[&str] = &[
    "MPI_Init",
    "MPI_Init_thread",
    "MPI_Finalize",
    "MPI_Pcontrol",
    "MPI_Wait",
    "MPI_Waitall",
    "MPI_Waitany",
    "MPI_Waitsome",
    "MPI_Test",
    "MPI_Testall",
    "MPI_Testany",
    "MPI_Testsome",
    "MPI_Request_free",
    "MPI_Cancel",
    "MPI_Start",
    "MPI_Startall",
    "MPI_Request_get_status",
    "MPI_Request_get_status_all",
    "MPI_Request_get_status_any",
    "MPI_Request_get_status_some",
    "MPI_Comm_c2f",
    "MPI_Comm_f2c",
    "MPI_Group_c2f",
    "MPI_Group_f2c",
    "MPI_Request_c2f",
    "MPI_Request_f2c",
    "MPI_Comm_toint",
    "MPI_Comm_fromint",
    "MPI_Group_toint",
    "MPI_Group_fromint",
    "MPI_Request_toint",
    "MPI_Request_fromint",
    "MPI_Comm_idup",
    "MPI_Comm_idup_with_info",
    "MPI_Sendrecv_replace",
    "MPI_Comm_get_parent",
    "MPI_Dist_graph_create",
    "MPI_Comm_split_type",
    "MPI_Comm_create_errhandler",
    "MPI_Errhandler_create",
    "MPI_Comm_set_errhandler",
    "MPI_Errhandler_set",
    "MPI_Comm_create_keyval",
    "MPI_Keyval_create",
    "MPI_Comm_get_attr",
    "MPI_Attr_get",
    "MPI_Op_create",
    "MPI_Op_create_c",
    "MPI_Alloc_mem",
    "MPI_Free_mem",
    "MPI_Comm_free_keyval",
    "MPI_Keyval_free",
    "MPI_Type_c2f",
    "MPI_Type_f2c",
    "MPI_Type_toint",
    "MPI_Type_fromint",
    "MPI_Op_c2f",
    "MPI_Op_f2c",
    "MPI_Op_toint",
    "MPI_Op_fromint",
    "MPI_Wtime",
    "MPI_Buffer_attach",
    "MPI_Buffer_detach",
];

/// Collective operations (blocking, nonblocking and persistent) and the
/// calls that are collective over a communicator they are given.
const COLLECTIVE_STEMS: &[&str] = &[
    "Barrier",
    "Bcast",
    "Gather",
    "Gatherv",
    "Scatter",
    "Scatterv",
    "Allgather",
    "Allgatherv",
    "Alltoall",
    "Alltoallv",
    "Alltoallw",
    "Reduce",
    "Allreduce",
    "Reduce_scatter",
    "Reduce_scatter_block",
    "Scan",
    "Exscan",
    "Neighbor_allgather",
    "Neighbor_allgatherv",
    "Neighbor_alltoall",
    "Neighbor_alltoallv",
    "Neighbor_alltoallw",
];

/// Window calls that are collective over the window's group: counted as
/// supersteps of the window (see `handles::win_slot`).
const WIN_COLLECTIVE: &[&str] = &["MPI_Win_fence", "MPI_Win_free"];
/// Window constructors: the window is registered after MPI made it.
const WIN_CONSTRUCTORS: &[&str] = &[
    "MPI_Win_create",
    "MPI_Win_allocate",
    "MPI_Win_allocate_shared",
    "MPI_Win_create_dynamic",
];

/// Communicator constructors that are collective over the new group only,
/// not over the communicator they are given.
const CREATION_BY_GROUP: &[&str] = &["MPI_Comm_create_group", "MPI_Comm_create_from_group"];

const COLLECTIVE_CALLS: &[&str] = &[
    "MPI_Comm_dup",
    "MPI_Comm_dup_with_info",
    "MPI_Comm_create",
    "MPI_Comm_split",
    "MPI_Comm_split_type",
    "MPI_Cart_create",
    "MPI_Cart_sub",
    "MPI_Graph_create",
    "MPI_Dist_graph_create",
    "MPI_Dist_graph_create_adjacent",
    "MPI_Intercomm_create",
    "MPI_Intercomm_merge",
    "MPI_Comm_spawn",
    "MPI_Comm_spawn_multiple",
    "MPI_Comm_accept",
    "MPI_Comm_connect",
    "MPI_Win_create",
    "MPI_Win_allocate",
    "MPI_Win_allocate_shared",
    "MPI_Win_create_dynamic",
    "MPI_File_open",
    "MPIX_Comm_shrink",
    "MPIX_Comm_agree",
];

fn template_of(name: &str) -> Template {
    let base = name.strip_suffix("_c").unwrap_or(name);
    if SPECIAL.contains(&base) {
        return Template::Special;
    }
    match base {
        "MPI_Send" | "MPI_Bsend" | "MPI_Ssend" | "MPI_Rsend" => return Template::Send,
        "MPI_Isend" | "MPI_Ibsend" | "MPI_Issend" | "MPI_Irsend" => return Template::Isend,
        "MPI_Send_init" | "MPI_Bsend_init" | "MPI_Ssend_init" | "MPI_Rsend_init" => {
            return Template::SendInit
        }
        "MPI_Irecv" => return Template::Irecv,
        "MPI_Recv_init" => return Template::RecvInit,
        "MPI_Recv" => return Template::Recv,
        "MPI_Probe" => return Template::Probe,
        "MPI_Iprobe" => return Template::Iprobe,
        "MPI_Mprobe" => return Template::Mprobe,
        "MPI_Improbe" => return Template::Improbe,
        "MPI_Mrecv" => return Template::Mrecv,
        "MPI_Imrecv" => return Template::Imrecv,
        "MPI_Sendrecv" => return Template::Sendrecv,
        "MPI_Isendrecv" | "MPI_Isendrecv_replace" => return Template::Isendrecv,
        _ => {}
    }
    if COLLECTIVE_CALLS.contains(&base) || WIN_COLLECTIVE.contains(&base) {
        return Template::Collective;
    }
    // Blocking (`MPI_Allreduce`), persistent (`MPI_Allreduce_init`) and
    // nonblocking (`MPI_Iallreduce`) forms of the collectives.
    let stem = base.strip_prefix("MPI_").unwrap_or(base);
    let stem = stem.strip_suffix("_init").unwrap_or(stem);
    let is_stem = |s: &str| COLLECTIVE_STEMS.iter().any(|c| c.eq_ignore_ascii_case(s));
    if is_stem(stem) || stem.strip_prefix('I').is_some_and(is_stem) {
        return Template::Collective;
    }
    Template::Plain
}

/// Rust type of a C type, in terms of the `sys` layer.
fn rust_type(ctype: &str) -> String {
    let c = ctype.trim();
    let (is_const, c) = match c.strip_prefix("const ") {
        Some(rest) => (true, rest.trim()),
        None => (false, c),
    };
    let stars = c.chars().rev().take_while(|&ch| ch == '*').count();
    let base = c[..c.len() - stars].trim();
    // Callback types are function typedefs: a pointer to one is bindgen's
    // `Option<fn>` under the typedef's own name.
    if base.ends_with("_function") || base.ends_with("_function_c") {
        return format!("sys::{base}");
    }
    let base_rs = match base {
        "int" => "c_int".to_string(),
        "double" => "f64".to_string(),
        "void" => "c_void".to_string(),
        "char" => "c_char".to_string(),
        other => format!("sys::{other}"),
    };
    let mut t = base_rs;
    for i in 0..stars {
        // `const` binds to the pointee of the outermost pointer.
        let ptr = if is_const && i == 0 {
            "*const "
        } else {
            "*mut "
        };
        t = format!("{ptr}{t}");
    }
    t
}

fn base_type(ctype: &str) -> (&str, usize) {
    let c = ctype.trim();
    let c = c.strip_prefix("const ").unwrap_or(c).trim();
    let stars = c.chars().rev().take_while(|&ch| ch == '*').count();
    (c[..c.len() - stars].trim(), stars)
}

/// Handle families the library virtualizes.
fn family(ctype: &str) -> Option<(&'static str, usize)> {
    let (base, stars) = base_type(ctype);
    let fam = match base {
        "MPI_Comm" => "comm",
        "MPI_Group" => "group",
        "MPI_Request" => "request",
        "MPI_Datatype" => "datatype",
        "MPI_Op" => "op",
        _ => return None,
    };
    Some((fam, stars))
}

/// MPI objects the program makes that are not virtual handles: counted
/// live (made, freed) so that a process image can refuse what it cannot
/// re-create yet (`crate::core::objects`).
fn tracked(ctype: &str) -> Option<&'static str> {
    let (base, stars) = base_type(ctype);
    if stars != 1 {
        return None;
    }
    Some(match base {
        "MPI_Errhandler" => "Errhandler",
        "MPI_Info" => "Info",
        "MPI_File" => "File",
        "MPI_Session" => "Session",
        _ => return None,
    })
}

/// Functions that release a tracked object through an `inout` handle.
fn releases(name: &str) -> bool {
    let base = name.strip_suffix("_c").unwrap_or(name);
    base.ends_with("_free") || base == "MPI_File_close" || base == "MPI_Session_finalize"
}

fn param_list(f: &Function) -> String {
    f.params
        .iter()
        .map(|p| format!("{}: {}", ident(&p.name), rust_type(&p.ctype)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn ident(name: &str) -> String {
    match name {
        "type" | "ref" | "fn" | "in" | "match" | "loop" | "use" | "mod" | "move" | "self" => {
            format!("r#{name}")
        }
        _ => name.to_string(),
    }
}

fn ret_type(f: &Function) -> String {
    rust_type(&f.ret)
}

/// The value returned when the wrapper itself fails (a panic caught at the
/// boundary): an MPI error code for `int` functions, a null handle or zero
/// otherwise.
fn fallback(f: &Function) -> String {
    match f.ret.as_str() {
        "int" => "crate::calls::boundary::internal_error()".into(),
        "double" => "0.0".into(),
        "MPI_Fint" | "MPI_Aint" => "0".into(),
        // A handle: all-zero bits are the null pointer (Open MPI) or an
        // invalid handle (MPICH).
        _ => "std::mem::zeroed()".into(),
    }
}

fn gen_function(f: &Function, out: &mut String) {
    let t = template_of(&f.name);
    let pname = format!("P{}", f.name);
    let params = param_list(f);
    let ret = ret_type(f);
    writeln!(out, "#[cfg(ferry_has = \"{}\")]", f.name).unwrap();
    writeln!(out, "#[no_mangle]").unwrap();
    if f.removed {
        writeln!(
            out,
            "/// Removed in MPI-3.0; still exported by both libraries."
        )
        .unwrap();
    }
    if f.extension {
        writeln!(
            out,
            "/// An extension of the MPI library (not in the standard)."
        )
        .unwrap();
    }
    writeln!(
        out,
        "pub unsafe extern \"C\" fn {}({}) -> {} {{",
        f.name, params, ret
    )
    .unwrap();
    let args: Vec<String> = f.params.iter().map(|p| ident(&p.name)).collect();
    if t == Template::Special {
        writeln!(
            out,
            "    crate::calls::boundary::guard(\"{}\", {}, || special::{}({}))",
            f.name,
            fallback(f),
            f.name,
            args.join(", ")
        )
        .unwrap();
        writeln!(out, "}}\n").unwrap();
        return;
    }
    let _ = f.variadic;
    let mut pre = String::new();
    // Datatypes, operations and groups of a collective: translated after
    // its entry, where a regroup, migration or restart may have made them
    // anew.
    let mut late = String::new();
    let mut post = String::new();
    // What an error leaves: a handle MPI set to its null (MPI_Comm_dup and
    // MPI_Type_dup after an attribute copy callback's error) is the
    // program's null too.
    let mut on_error = String::new();
    let mut call_args = Vec::new();
    let mut comm_slot: Option<String> = None;
    let mut other_comms: Vec<String> = Vec::new();
    for p in &f.params {
        let id = ident(&p.name);
        // The tool interface's datatypes are predefined ones: not virtual.
        let fam = family(&p.ctype)
            .filter(|(fam, _)| !(*fam == "datatype" && f.name.starts_with("MPI_T_")));
        match fam {
            Some((fam, 0)) => {
                // A handle passed by value: translate it.
                if fam == "comm" && comm_slot.is_none() {
                    writeln!(pre, "    let ({id}, {id}_slot) = handles::comm_in({id});").unwrap();
                    comm_slot = Some(format!("{id}_slot"));
                } else if fam == "comm" && t == Template::Collective {
                    // Translated again if a regroup at the entry moves the job.
                    writeln!(pre, "    let {id}_virtual = {id};").unwrap();
                    writeln!(pre, "    let {id} = handles::comm_real({id});").unwrap();
                    other_comms.push(id.clone());
                } else {
                    if fam == "datatype" {
                        // Kept for what outlives this call (a repeated
                        // receive, a request posted again): translated
                        // when used.
                        writeln!(pre, "    let {id}_virtual = {id};").unwrap();
                    }
                    let at = if t == Template::Collective
                        && (fam == "datatype" || fam == "op" || fam == "group")
                    {
                        &mut late
                    } else {
                        &mut pre
                    };
                    writeln!(at, "    let {id} = handles::{fam}_real({id});").unwrap();
                }
                call_args.push(id);
            }
            Some((fam, 1)) if p.dir == "out" && !is_array(p) => {
                // A new handle made by MPI: give the program a virtual one.
                writeln!(pre, "    let mut {id}_real = handles::{fam}_null();").unwrap();
                call_args.push(format!(
                    "if {id}.is_null() {{ {id} }} else {{ &mut {id}_real }}"
                ));
                let reg = match (fam, t) {
                    ("request", Template::Isend) => {
                        format!("handles::request_out({id}_real, handles::ReqKind::Send, {}, dest, tag)", comm_slot.clone().unwrap())
                    }
                    ("request", Template::SendInit) => format!(
                        "handles::request_out_p2p({id}_real, handles::ReqKind::PersistentSend, {}, dest, tag, {})",
                        comm_slot.clone().unwrap(),
                        p2p_args(&f.name)
                    ),
                    ("request", Template::Irecv) => format!(
                        "handles::request_out_p2p({id}_real, handles::ReqKind::Recv, {}, source, tag, {})",
                        comm_slot.clone().unwrap(),
                        p2p_args(&f.name)
                    ),
                    ("request", Template::Isendrecv) => format!(
                        "handles::request_out({id}_real, handles::ReqKind::Recv, {}, source, recvtag)",
                        comm_slot.clone().unwrap()
                    ),
                    ("request", Template::RecvInit) => format!(
                        "handles::request_out_p2p({id}_real, handles::ReqKind::PersistentRecv, {}, source, tag, {})",
                        comm_slot.clone().unwrap(),
                        p2p_args(&f.name)
                    ),
                    ("request", Template::Imrecv) => {
                        format!("handles::request_out({id}_real, handles::ReqKind::Recv, mslot, msource, 0)")
                    }
                    ("request", Template::Collective) => format!(
                        "handles::request_out({id}_real, handles::ReqKind::Collective, {}, -1, -1)",
                        comm_slot.clone().unwrap()
                    ),
                    ("request", _) => format!(
                        "handles::request_out({id}_real, handles::ReqKind::Other, {}, -1, -1)",
                        comm_slot.clone().unwrap_or_else(|| "handles::CommRef::NONE".into())
                    ),
                    (fam, _) => format!("handles::{fam}_out({id}_real)"),
                };
                writeln!(post, "        if !{id}.is_null() {{ *{id} = {reg}; }}").unwrap();
                if fam != "request" {
                    writeln!(
                        on_error,
                        "        if !{id}.is_null() && {id}_real == handles::{fam}_null() {{ *{id} = {id}_real; }}"
                    )
                    .unwrap();
                }
            }
            Some((fam, 1)) if p.dir == "inout" && !is_array(p) => {
                // A handle freed (or replaced) by MPI.
                writeln!(pre, "    let mut {id}_real = if {id}.is_null() {{ handles::{fam}_null() }} else {{ handles::{fam}_real(*{id}) }};").unwrap();
                call_args.push(format!(
                    "if {id}.is_null() {{ {id} }} else {{ &mut {id}_real }}"
                ));
                writeln!(post, "        if !{id}.is_null() {{ *{id} = handles::{fam}_released(*{id}, {id}_real); }}").unwrap();
            }
            Some((fam, 1)) if p.dir == "in" && !is_array(p) => {
                // A handle passed by pointer for reading only.
                writeln!(pre, "    let mut {id}_real = if {id}.is_null() {{ handles::{fam}_null() }} else {{ handles::{fam}_real(*{id}) }};").unwrap();
                call_args.push(format!(
                    "if {id}.is_null() {{ {id} as _ }} else {{ &mut {id}_real }}"
                ));
            }
            Some((fam, _)) => {
                // Arrays of handles: translated into a scratch array.
                let len = array_len(f, p);
                let dirp = p.dir.as_str();
                let at = if t == Template::Collective && fam == "datatype" {
                    &mut late
                } else {
                    &mut pre
                };
                writeln!(
                    at,
                    "    let mut {id}_real = handles::{fam}_array_in({id}, {len}, {});",
                    dirp != "out"
                )
                .unwrap();
                call_args.push(format!(
                    "handles::array_ptr(&mut {id}_real, {id} as *mut _)"
                ));
                if dirp != "in" {
                    writeln!(post, "        handles::{fam}_array_out({id}, &{id}_real);").unwrap();
                }
            }
            // Pointers are forwarded with a cast: a few C prototypes in the
            // spec spell an array differently from mpi.h (`int ranges[][3]`).
            None if rust_type(&p.ctype).starts_with('*') => {
                if let Some(kind) = tracked(&p.ctype).filter(|_| !is_array(p)) {
                    if p.dir == "out" {
                        writeln!(post, "        if !{id}.is_null() {{ crate::core::objects::made(crate::core::objects::Kind::{kind}, *{id}); }}").unwrap();
                    } else if p.dir == "inout" && releases(&f.name) {
                        writeln!(pre, "    let {id}_before = if {id}.is_null() {{ None }} else {{ Some(*{id}) }};").unwrap();
                        writeln!(post, "        if let Some(h) = {id}_before {{ crate::core::objects::freed(crate::core::objects::Kind::{kind}, h); }}").unwrap();
                    }
                }
                call_args.push(format!("{id} as _"))
            }
            None => call_args.push(id),
        }
    }
    // Window collectives count on the window's own slot.
    let base = f.name.strip_suffix("_c").unwrap_or(&f.name);
    if WIN_COLLECTIVE.contains(&base) {
        let w = if base == "MPI_Win_free" {
            "if win.is_null() { handles::win_null() } else { *win }"
        } else {
            "win"
        };
        writeln!(pre, "    let win_slot = handles::win_slot({w});").unwrap();
        if base == "MPI_Win_free" {
            writeln!(post, "        handles::win_released(win_slot);").unwrap();
        }
    }
    // Access and exposure epochs of the program's windows: a regroup does
    // not freeze a process at a call boundary inside one (peers may be
    // waiting in MPI for its unlock).
    if [
        "MPI_Win_lock",
        "MPI_Win_lock_all",
        "MPI_Win_start",
        "MPI_Win_post",
    ]
    .contains(&base)
    {
        writeln!(post, "        crate::protocol::regroup::epoch_opened();").unwrap();
    }
    if [
        "MPI_Win_unlock",
        "MPI_Win_unlock_all",
        "MPI_Win_complete",
        "MPI_Win_wait",
    ]
    .contains(&base)
    {
        writeln!(post, "        crate::protocol::regroup::epoch_closed();").unwrap();
    }
    if base == "MPI_Win_test" {
        writeln!(
            post,
            "        if !flag.is_null() && *flag != 0 {{ crate::protocol::regroup::epoch_closed(); }}"
        )
        .unwrap();
    }
    if WIN_CONSTRUCTORS.contains(&base) {
        writeln!(
            post,
            "        if !win.is_null() {{ handles::win_register(*win); }}"
        )
        .unwrap();
    }
    // Templates that need the communicator's slot.
    let slot = if WIN_COLLECTIVE.contains(&base) {
        "win_slot".to_string()
    } else {
        comm_slot
            .clone()
            .unwrap_or_else(|| "handles::CommRef::NONE".into())
    };
    debug_assert!(t == Template::Collective || late.is_empty());
    let call = format!("{pname}({})", call_args.join(", "));
    let body = match t {
        Template::Plain
        | Template::Isend
        | Template::SendInit
        | Template::Irecv
        | Template::RecvInit
        | Template::Isendrecv => {
            let mut b = String::new();
            if matches!(t, Template::Isend | Template::Isendrecv) {
                writeln!(b, "    channels::count_send({slot}, dest);").unwrap();
            }
            if t == Template::Irecv {
                // Drained messages are served first.
                writeln!(b, "    if crate::protocol::drain::pending() {{ if let Some(rc) = crate::protocol::drain::irecv({slot}, source, tag, buf, count as i64, datatype, request) {{ return rc; }} }}").unwrap();
            }
            if CREATION_BY_GROUP.contains(&f.name.as_str()) {
                writeln!(b, "    superstep::note_creation({slot});").unwrap();
            }
            b + &format!("    let rc = {call};\n")
        }
        Template::Collective => {
            let comm_var = comm_slot
                .as_deref()
                .and_then(|s| s.strip_suffix("_slot"))
                .map(str::to_string);
            let mut b = format!("    let ticket = superstep::enter_collective({slot});\n");
            if let Some(c) = &comm_var {
                // A regroup while waiting at the entry moves the job to new
                // communicators: call MPI with the one of the moment.
                writeln!(b, "    let {c} = ticket.real({c});").unwrap();
            }
            for o in &other_comms {
                writeln!(b, "    let {o} = ticket.again({o}, {o}_virtual);").unwrap();
            }
            b.push_str(&late);
            writeln!(b, "    let rc = {call};").unwrap();
            writeln!(b, "    superstep::leave_collective(ticket);").unwrap();
            if f.name == "MPI_Barrier" {
                // The world-swap test switch counts barriers on the world.
                writeln!(b, "    crate::protocol::control::after_barrier({slot});").unwrap();
            }
            b
        }
        Template::Send => {
            let base = f.name.strip_suffix("_c").unwrap_or(&f.name);
            let isend = match base {
                "MPI_Send" => Some(f.name.replacen("MPI_Send", "PMPI_Isend", 1)),
                "MPI_Ssend" => Some(f.name.replacen("MPI_Ssend", "PMPI_Issend", 1)),
                _ => None,
            };
            match isend {
                Some(isend) => format!(
                    "    channels::count_send({slot}, dest);\n    let rc = p2p::send_blocking({slot}, dest, tag, {}, count as i64, datatype, || {call}, |req| {isend}(buf, count, handles::datatype_real(datatype_virtual), dest, tag, comm, req));\n",
                    base == "MPI_Ssend"
                ),
                None => format!("    channels::count_send({slot}, dest);\n    let rc = {call};\n"),
            }
        }
        Template::Recv => {
            let irecv = f.name.replacen("MPI_Recv", "PMPI_Irecv", 1);
            format!(
                "    let rc = p2p::recv_blocking({slot}, comm, source, tag, status, p2p::Target {{ buf, count: count as i64, datatype: datatype_virtual }}, |comm, req| {irecv}(buf, count, handles::datatype_real(datatype_virtual), source, tag, comm, req));\n"
            )
        }
        Template::Probe => {
            format!("    let rc = p2p::probe_blocking({slot}, source, tag, comm, status);\n")
        }
        Template::Iprobe => {
            format!("    let rc = p2p::iprobe({slot}, source, tag, comm, flag, status);\n")
        }
        Template::Mprobe => {
            format!(
                "    let rc = p2p::mprobe_blocking({slot}, source, tag, comm, message, status);\n"
            )
        }
        Template::Improbe => {
            format!(
                "    let rc = p2p::improbe({slot}, source, tag, comm, flag, message, status);\n"
            )
        }
        Template::Mrecv => {
            let imrecv = f.name.replacen("MPI_Mrecv", "PMPI_Imrecv", 1);
            "    if let Some(rc) = crate::protocol::drain::mrecv(buf, count as i64, datatype, message, status, std::ptr::null_mut()) { return rc; }\n".to_string()
                + "    let (mslot, msource) = handles::message_consumed(*message);\n"
                + &format!(
                    "    let rc = p2p::mrecv_blocking(mslot, msource, status, |req| {imrecv}(buf, count, handles::datatype_real(datatype_virtual), message, req));\n"
                )
        }
        Template::Imrecv => {
            "    if let Some(rc) = crate::protocol::drain::mrecv(buf, count as i64, datatype, message, sys::constants::MPI_STATUS_IGNORE(), request) { return rc; }\n".to_string()
                + "    let (mslot, msource) = handles::message_consumed(*message);\n"
                + &format!("    let rc = {call};\n")
        }
        Template::Sendrecv => {
            let isend = f.name.replacen("MPI_Sendrecv", "PMPI_Isend", 1);
            let irecv = f.name.replacen("MPI_Sendrecv", "PMPI_Irecv", 1);
            format!(
                "    channels::count_send({slot}, dest);\n    let rc = p2p::sendrecv_blocking({slot}, comm, source, recvtag, status, p2p::Target {{ buf: recvbuf, count: recvcount as i64, datatype: recvtype_virtual }},\n        |req| {isend}(sendbuf, sendcount, handles::datatype_real(sendtype_virtual), dest, sendtag, comm, req),\n        |comm, req| {irecv}(recvbuf, recvcount, handles::datatype_real(recvtype_virtual), source, recvtag, comm, req));\n"
            )
        }
        Template::Special => unreachable!(),
    };
    // MPICH's posted MPI_ANY_SOURCE receives fail after a migration: the
    // receives go through `anysource` (see there), which is `PMPI_Irecv`
    // everywhere else.
    let body = match f.name.as_str() {
        "MPI_Irecv" | "MPI_Recv" | "MPI_Sendrecv" => {
            body.replace("PMPI_Irecv(", "crate::calls::anysource::irecv(")
        }
        "MPI_Irecv_c" | "MPI_Recv_c" | "MPI_Sendrecv_c" => {
            body.replace("PMPI_Irecv_c(", "crate::calls::anysource::irecv_c(")
        }
        _ => body,
    };
    // A send MPI refused sent nothing: take its count back.
    let body = if matches!(
        t,
        Template::Send | Template::Isend | Template::Isendrecv | Template::Sendrecv
    ) {
        body + &format!("    if rc != sys::constants::MPI_SUCCESS() {{ channels::uncount_send({slot}, dest); }}\n")
    } else {
        body
    };
    let is_int = f.ret == "int";
    writeln!(
        out,
        "    crate::calls::boundary::guard(\"{}\", {}, || {{",
        f.name,
        fallback(f)
    )
    .unwrap();
    for line in pre.lines() {
        writeln!(out, "    {line}").unwrap();
    }
    for line in body.lines() {
        writeln!(out, "    {line}").unwrap();
    }
    if !post.is_empty() {
        if is_int {
            writeln!(out, "        if rc == sys::constants::MPI_SUCCESS() {{").unwrap();
        } else {
            writeln!(out, "        {{").unwrap();
        }
        for line in post.lines() {
            writeln!(out, "    {line}").unwrap();
        }
        if is_int && !on_error.is_empty() {
            writeln!(out, "        }} else {{").unwrap();
            for line in on_error.lines() {
                writeln!(out, "    {line}").unwrap();
            }
        }
        writeln!(out, "        }}").unwrap();
    }
    writeln!(out, "        rc").unwrap();
    writeln!(out, "    }})").unwrap();
    writeln!(out, "}}\n").unwrap();
}

/// The arguments a rebuilt communicator needs to post a request again.
fn p2p_args(name: &str) -> String {
    let op = name.trim_start_matches("MPI_");
    format!(
        "handles::P2pArgs {{ op: handles::P2pOp::{op}, buf: buf as *mut c_void, count: count as i64, datatype: datatype_virtual }}"
    )
}

fn is_array(p: &Param) -> bool {
    p.name.starts_with("array_of_")
        || p.name.ends_with('s') && p.kind == "REQUEST"
        || p.name.ends_with("types") && base_type(&p.ctype).0 == "MPI_Datatype"
}

/// The length of an array of handles: the spec names it in `count`-like
/// parameters; the few cases are known.
fn array_len(f: &Function, p: &Param) -> String {
    let has = |n: &str| f.params.iter().any(|q| q.name == n);
    if has("count") {
        "count as usize".into()
    } else if has("incount") {
        "incount as usize".into()
    } else if has("n") {
        "n as usize".into()
    } else if has("max_datatypes") {
        "max_datatypes as usize".into()
    } else if p.name == "sendtypes" || p.name == "recvtypes" {
        // Alltoallw-like: one per peer (or per neighbour).
        let neighbor = f.name.contains("eighbor");
        let which = if p.name == "sendtypes" { 0 } else { 1 };
        format!("handles::alltoallw_lens(handles::comm_real(comm), {neighbor}).{which}")
    } else {
        panic!("{}: no length for array parameter {}", f.name, p.name)
    }
}

fn generate(spec: &Spec) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "// @generated by ferry-codegen from spec/mpi-c-api.json ({}).\n// Do not edit: change codegen/src/main.rs and run `cargo run -p ferry-codegen`.\n",
        spec.source
    )
    .unwrap();
    out.push_str(
        "#![allow(non_snake_case, unused_mut, unused_variables, clippy::all)]\n\
         use crate::{calls::p2p, core::{channels, handles, superstep}, entry::special, sys};\n\
         use crate::sys::*;\n\
         use std::ffi::{c_char, c_int, c_void};\n\n",
    );
    let mut by_template: BTreeMap<String, usize> = BTreeMap::new();
    for f in &spec.functions {
        *by_template
            .entry(format!("{:?}", template_of(&f.name)))
            .or_default() += 1;
        gen_function(f, &mut out);
    }
    let summary: Vec<String> = by_template
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    writeln!(
        out,
        "// {} wrappers ({}).",
        spec.functions.len(),
        summary.join(", ")
    )
    .unwrap();
    out
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn spec() -> Spec {
    let text = std::fs::read_to_string(root().join("spec/mpi-c-api.json")).expect("read spec");
    serde_json::from_str(&text).expect("parse spec")
}

/// Generates the C wrappers from the committed spec.
pub fn render() -> String {
    generate(&spec())
}

/// Generates the Fortran entry points (Open MPI) from the committed spec.
pub fn render_fortran() -> String {
    let spec = spec();
    fortran::generate(&spec.functions, &spec.source)
}

pub fn render_fortran_mpich() -> String {
    let spec = spec();
    fortran::generate_mpich(&spec.functions, &spec.source)
}

/// The generated files: path and contents.
fn outputs() -> Vec<(PathBuf, String)> {
    vec![
        (root().join("src/entry/wrappers/generated.rs"), render()),
        (
            root().join("src/entry/wrappers/fortran.rs"),
            render_fortran(),
        ),
        (
            root().join("src/entry/wrappers/fortran_mpich.rs"),
            render_fortran_mpich(),
        ),
    ]
}

fn main() {
    let check = std::env::args().any(|a| a == "--check");
    let mut stale = false;
    for (target, text) in outputs() {
        if check {
            let old = std::fs::read_to_string(&target).unwrap_or_default();
            if old != text {
                eprintln!(
                    "{} is out of date: run `cargo run -p ferry-codegen`",
                    target.display()
                );
                stale = true;
            } else {
                println!("{}: up to date", target.display());
            }
            continue;
        }
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, text).unwrap();
        println!("wrote {}", target.display());
    }
    if stale {
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_wrappers_are_up_to_date() {
        let committed = std::fs::read_to_string(root().join("src/entry/wrappers/generated.rs"))
            .expect("src/entry/wrappers/generated.rs is missing: run `cargo run -p ferry-codegen`");
        assert!(
            committed == render(),
            "src/entry/wrappers/generated.rs differs from the generator's output: run `cargo run -p ferry-codegen` and commit"
        );
    }

    #[test]
    fn committed_fortran_entry_points_are_up_to_date() {
        let committed = std::fs::read_to_string(root().join("src/entry/wrappers/fortran.rs"))
            .expect("src/entry/wrappers/fortran.rs is missing: run `cargo run -p ferry-codegen`");
        assert!(
            committed == render_fortran(),
            "src/entry/wrappers/fortran.rs differs from the generator's output: run `cargo run -p ferry-codegen` and commit"
        );
    }

    #[test]
    fn committed_mpich_fortran_entry_points_are_up_to_date() {
        let committed = std::fs::read_to_string(root().join("src/entry/wrappers/fortran_mpich.rs"))
            .expect(
                "src/entry/wrappers/fortran_mpich.rs is missing: run `cargo run -p ferry-codegen`",
            );
        assert!(
            committed == render_fortran_mpich(),
            "src/entry/wrappers/fortran_mpich.rs differs from the generator's output: run `cargo run -p ferry-codegen` and commit"
        );
    }

    #[test]
    fn templates() {
        assert_eq!(template_of("MPI_Allreduce"), Template::Collective);
        assert_eq!(template_of("MPI_Iallreduce_c"), Template::Collective);
        assert_eq!(template_of("MPI_Bcast_init"), Template::Collective);
        assert_eq!(template_of("MPI_Reduce_local"), Template::Plain);
        assert_eq!(template_of("MPI_Isend_c"), Template::Isend);
        assert_eq!(template_of("MPI_Recv"), Template::Recv);
        assert_eq!(template_of("MPI_Waitall"), Template::Special);
        assert_eq!(template_of("MPI_Comm_rank"), Template::Plain);
    }

    #[test]
    fn types() {
        assert_eq!(rust_type("const void*"), "*const c_void");
        assert_eq!(rust_type("char***"), "*mut *mut *mut c_char");
        assert_eq!(
            rust_type("MPI_Comm_copy_attr_function*"),
            "sys::MPI_Comm_copy_attr_function"
        );
        assert_eq!(rust_type("const MPI_Datatype*"), "*const sys::MPI_Datatype");
    }
}
