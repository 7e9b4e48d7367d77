//! ferry's wrapper generator.
//!
//! Reads `spec/mpi-c-api.json` (the MPI Forum's C API, snapshotted from
//! `pympistandard` by `codegen/extract_spec.py`) and writes
//! `src/entry/wrappers/generated.rs`: one exported `MPI_*` function per C binding,
//! each calling the real library through `PMPI_*` with the library's
//! bookkeeping around it. What each wrapper does follows from its
//! parameters' kinds (communicator, group, request handles are translated
//! between the program's virtual handles and the real ones) and from the
//! template `spec/overlay.toml` gives the function (collectives, sends,
//! receives, probes, hand-written ones; `plain` without an entry), with the
//! overlay's per-function flags (see `overlay` and docs/codegen.md). Each
//! wrapper names its template in a comment, and its body is an `unsafe`
//! block under the template's `SAFETY:` comment.
//!
//! `ferry-codegen` writes the files; `ferry-codegen --check` fails when a
//! committed file differs from what the generator produces, or when the
//! overlay is bad (a test runs it).
mod fortran;
mod overlay;

use overlay::{Entry, Epoch, Overlay, Template, Window};
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

/// Functions that release a tracked object through an `inout` handle: the
/// `*_free` ones and those the overlay says so of.
fn releases(name: &str, e: &Entry) -> bool {
    let base = name.strip_suffix("_c").unwrap_or(name);
    base.ends_with("_free") || e.releases
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

/// The `SAFETY:` comment of a wrapper's `unsafe` block: the invariant its
/// template keeps. Common to all: the caller of the MPI function vouches
/// for its arguments, as MPI's C binding requires; the wrapper passes them
/// on unchanged but for virtual handles swapped for the real ones, and
/// writes through a pointer only where MPI would.
fn safety(t: Template, name: &str) -> String {
    let what = match t {
        Template::Special => {
            return format!(
                "the caller's arguments, valid as {name} requires, go unchanged to the hand-written special::{name}, which has {name}'s contract."
            )
        }
        Template::Plain => "",
        Template::Collective => {
            " Buffers go to MPI untouched, between entering and leaving the collective's superstep."
        }
        Template::Send => " The message buffer is only read, by MPI, before the call returns.",
        Template::Isend | Template::SendInit | Template::Irecv | Template::RecvInit => {
            " The buffer is the caller's until the request completes, as MPI requires; the request is written only through a non-null pointer."
        }
        Template::Recv | Template::Mrecv | Template::Sendrecv => {
            " The buffer and status are the caller's for the call: the wakeable receive completes its request before returning."
        }
        Template::Imrecv => {
            " The buffers are the caller's until the request completes, as MPI requires."
        }
        Template::Probe | Template::Iprobe | Template::Mprobe | Template::Improbe => {
            " Flag, message and status are written as MPI would, through the caller's pointers."
        }
    };
    format!(
        "the caller's arguments, valid as {name} requires, go to P{name} unchanged but for virtual handles made real; handles are written back only through non-null pointers.{what}"
    )
}

fn gen_function(f: &Function, e: &Entry, out: &mut String) {
    let t = e.template;
    let pname = format!("P{}", f.name);
    let params = param_list(f);
    let ret = ret_type(f);
    writeln!(out, "// template: {}", t.name()).unwrap();
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
    writeln!(out, "    // SAFETY: {}", safety(t, &f.name)).unwrap();
    if t == Template::Special {
        writeln!(
            out,
            "    unsafe {{ crate::calls::boundary::guard(\"{}\", {}, || special::{}({})) }}",
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
                    let real = handle_fn(fam, "real");
                    writeln!(at, "    let {id} = {real}({id});").unwrap();
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
                    (fam, _) => format!("{}({id}_real)", handle_fn(fam, "out")),
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
                let (real, released) = (handle_fn(fam, "real"), handle_fn(fam, "released"));
                writeln!(pre, "    let mut {id}_real = if {id}.is_null() {{ handles::{fam}_null() }} else {{ {real}(*{id}) }};").unwrap();
                call_args.push(format!(
                    "if {id}.is_null() {{ {id} }} else {{ &mut {id}_real }}"
                ));
                writeln!(
                    post,
                    "        if !{id}.is_null() {{ *{id} = {released}(*{id}, {id}_real); }}"
                )
                .unwrap();
            }
            Some((fam, 1)) if p.dir == "in" && !is_array(p) => {
                // A handle passed by pointer for reading only.
                let real = handle_fn(fam, "real");
                writeln!(pre, "    let mut {id}_real = if {id}.is_null() {{ handles::{fam}_null() }} else {{ {real}(*{id}) }};").unwrap();
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
                    } else if p.dir == "inout" && releases(&f.name, e) {
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
    let win_collective = matches!(e.window, Some(Window::Collective | Window::Free));
    if win_collective {
        let w = if e.window == Some(Window::Free) {
            "if win.is_null() { handles::win_null() } else { *win }"
        } else {
            "win"
        };
        writeln!(pre, "    let win_slot = handles::win_slot({w});").unwrap();
        if e.window == Some(Window::Free) {
            writeln!(post, "        handles::win_released(win_slot);").unwrap();
        }
    }
    // Access and exposure epochs of the program's windows: a regroup does
    // not freeze a process at a call boundary inside one (peers may be
    // waiting in MPI for its unlock).
    match e.epoch {
        Some(Epoch::Opens) => {
            writeln!(post, "        crate::protocol::regroup::epoch_opened();").unwrap();
        }
        Some(Epoch::Closes) => {
            writeln!(post, "        crate::protocol::regroup::epoch_closed();").unwrap();
        }
        Some(Epoch::ClosesIfFlag) => {
            writeln!(
                post,
                "        if !flag.is_null() && *flag != 0 {{ crate::protocol::regroup::epoch_closed(); }}"
            )
            .unwrap();
        }
        None => {}
    }
    if e.window == Some(Window::Constructor) {
        writeln!(
            post,
            "        if !win.is_null() {{ comms::win_register(*win); }}"
        )
        .unwrap();
    }
    // Templates that need the communicator's slot.
    let slot = if win_collective {
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
        | Template::RecvInit => {
            let mut b = String::new();
            if t == Template::Isend {
                writeln!(b, "    channels::count_send({slot}, dest);").unwrap();
            }
            if t == Template::Irecv {
                // Drained messages are served first.
                writeln!(b, "    if crate::protocol::drain::pending() {{ if let Some(rc) = crate::protocol::drain::irecv({slot}, source, tag, buf, count as i64, datatype, request) {{ return rc; }} }}").unwrap();
            }
            if e.note_creation {
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
            if e.after_barrier {
                // The world-swap test switch counts barriers on the world.
                writeln!(b, "    crate::protocol::control::after_barrier({slot});").unwrap();
            }
            b
        }
        Template::Send => {
            let isend = e.send_via.as_ref().map(|via| format!("P{via}"));
            match isend {
                Some(isend) => format!(
                    "    channels::count_send({slot}, dest);\n    let rc = p2p::send_blocking({slot}, dest, tag, {}, count as i64, datatype, || {call}, |req| {isend}(buf, count, handles::datatype_real(datatype_virtual), dest, tag, comm, req));\n",
                    e.synchronous
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
    let body = if e.anysource {
        let c = if f.name.ends_with("_c") { "_c" } else { "" };
        body.replace(
            &format!("PMPI_Irecv{c}("),
            &format!("crate::calls::anysource::irecv{c}("),
        )
    } else {
        body
    };
    // A send MPI refused sent nothing: take its count back.
    let body = if matches!(t, Template::Send | Template::Isend | Template::Sendrecv) {
        body + &format!("    if rc != sys::constants::MPI_SUCCESS() {{ channels::uncount_send({slot}, dest); }}\n")
    } else {
        body
    };
    let is_int = f.ret == "int";
    writeln!(
        out,
        "    unsafe {{ crate::calls::boundary::guard(\"{}\", {}, || {{",
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
    writeln!(out, "    }}) }}").unwrap();
    writeln!(out, "}}\n").unwrap();
}

/// The arguments a rebuilt communicator needs to post a request again.
fn p2p_args(name: &str) -> String {
    let op = name.trim_start_matches("MPI_");
    format!(
        "handles::P2pArgs {{ op: handles::P2pOp::{op}, buf: buf as *mut c_void, count: count as i64, datatype: datatype_virtual }}"
    )
}

/// The function that translates a handle of family `fam` (`real`: the
/// program's handle to MPI's, `out`: a handle MPI just made to the
/// program's, `released`: after MPI freed or replaced it). The virtual
/// handle tables (`core::handles`) do most; a communicator MPI made is
/// taken in with its recipe and global id (`core::comms`), and reduction
/// operations have their own table (`core::ops`).
fn handle_fn(fam: &str, what: &str) -> String {
    match (fam, what) {
        ("comm", "out") => "comms::comm_out".into(),
        ("op", "real") => "reductions::op_real".into(),
        ("op", "released") => "reductions::released".into(),
        _ => format!("handles::{fam}_{what}"),
    }
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

fn generate(spec: &Spec, overlay: &Overlay) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "// @generated by ferry-codegen from spec/mpi-c-api.json ({}).\n// Do not edit: change spec/overlay.toml or codegen/src/main.rs and run `cargo run -p ferry-codegen`.\n",
        spec.source
    )
    .unwrap();
    out.push_str(
        "#![allow(non_snake_case, unused_mut, unused_variables, clippy::all)]\n\
         use crate::{calls::p2p, core::{channels, comms, handles, ops as reductions, superstep}, entry::special, sys};\n\
         use crate::sys::*;\n\
         use std::ffi::{c_char, c_int, c_void};\n\n",
    );
    let mut by_template: BTreeMap<String, usize> = BTreeMap::new();
    for f in &spec.functions {
        let e = overlay.get(&f.name);
        *by_template.entry(format!("{:?}", e.template)).or_default() += 1;
        gen_function(f, e, &mut out);
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

/// The committed spec and overlay, the overlay checked against the spec.
fn load() -> Result<(Spec, Overlay), String> {
    let text = std::fs::read_to_string(root().join("spec/mpi-c-api.json"))
        .map_err(|e| format!("spec/mpi-c-api.json: {e}"))?;
    let spec: Spec =
        serde_json::from_str(&text).map_err(|e| format!("spec/mpi-c-api.json: {e}"))?;
    let text = std::fs::read_to_string(root().join(overlay::PATH))
        .map_err(|e| format!("{}: {e}", overlay::PATH))?;
    let overlay = Overlay::parse(&text, spec.functions.iter().map(|f| f.name.as_str()))?;
    Ok((spec, overlay))
}

/// Generates the C wrappers from the committed spec and overlay.
pub fn render() -> Result<String, String> {
    let (spec, overlay) = load()?;
    Ok(generate(&spec, &overlay))
}

/// Generates the Fortran entry points (Open MPI) from the committed spec.
pub fn render_fortran() -> Result<String, String> {
    let (spec, overlay) = load()?;
    Ok(fortran::generate(&spec.functions, &overlay, &spec.source))
}

pub fn render_fortran_mpich() -> Result<String, String> {
    let (spec, overlay) = load()?;
    Ok(fortran::generate_mpich(
        &spec.functions,
        &overlay,
        &spec.source,
    ))
}

/// The generated files: path and contents.
fn outputs() -> Result<Vec<(PathBuf, String)>, String> {
    Ok(vec![
        (root().join("src/entry/wrappers/generated.rs"), render()?),
        (
            root().join("src/entry/wrappers/fortran.rs"),
            render_fortran()?,
        ),
        (
            root().join("src/entry/wrappers/fortran_mpich.rs"),
            render_fortran_mpich()?,
        ),
    ])
}

fn main() {
    let check = std::env::args().any(|a| a == "--check");
    let mut stale = false;
    // A bad overlay (or spec) fails both modes, with the entry named.
    let outputs = outputs().unwrap_or_else(|e| {
        eprintln!("ferry-codegen: {e}");
        std::process::exit(2);
    });
    for (target, text) in outputs {
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
            committed == render().unwrap(),
            "src/entry/wrappers/generated.rs differs from the generator's output: run `cargo run -p ferry-codegen` and commit"
        );
    }

    #[test]
    fn committed_fortran_entry_points_are_up_to_date() {
        let committed = std::fs::read_to_string(root().join("src/entry/wrappers/fortran.rs"))
            .expect("src/entry/wrappers/fortran.rs is missing: run `cargo run -p ferry-codegen`");
        assert!(
            committed == render_fortran().unwrap(),
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
            committed == render_fortran_mpich().unwrap(),
            "src/entry/wrappers/fortran_mpich.rs differs from the generator's output: run `cargo run -p ferry-codegen` and commit"
        );
    }

    #[test]
    fn templates() {
        let (_, o) = load().unwrap();
        assert_eq!(o.get("MPI_Allreduce").template, Template::Collective);
        assert_eq!(o.get("MPI_Iallreduce_c").template, Template::Collective);
        assert_eq!(o.get("MPI_Bcast_init").template, Template::Collective);
        assert_eq!(o.get("MPI_Reduce_local").template, Template::Plain);
        assert_eq!(o.get("MPI_Isend_c").template, Template::Isend);
        assert_eq!(o.get("MPI_Recv").template, Template::Recv);
        assert_eq!(o.get("MPI_Waitall").template, Template::Special);
        assert_eq!(o.get("MPI_Comm_rank").template, Template::Plain);
    }

    /// Every generated wrapper names its template, and every `unsafe`
    /// block of the generated files has its `SAFETY:` comment.
    #[test]
    fn wrappers_name_their_template_and_unsafe_blocks_their_safety() {
        let (spec, o) = load().unwrap();
        let text = generate(&spec, &o);
        assert_eq!(
            text.matches("\n// template: ").count(),
            spec.functions.len()
        );
        for text in [
            text,
            fortran::generate(&spec.functions, &o, &spec.source),
            fortran::generate_mpich(&spec.functions, &o, &spec.source),
        ] {
            let lines: Vec<&str> = text.lines().collect();
            for (i, l) in lines.iter().enumerate() {
                if l.contains("unsafe {") {
                    assert!(
                        i > 0 && lines[i - 1].trim_start().starts_with("// SAFETY: "),
                        "no SAFETY comment above line {}: {l}",
                        i + 1
                    );
                }
            }
        }
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
