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
//! Which functions must get a converted entry point (`fortran = "required"`:
//! the generator fails if one cannot), which are forwarded although they
//! convert (`fortran = "forward"`), and the other per-function decisions
//! (`f08_via_pmpi`, `fortran_statuses`, ...) are in `spec/overlay.toml`.
//! The generated file ends with the lists (see docs/fortran.md).
//!
//! Under MPICH (`generate_mpich`) only the functions its Fortran layer does
//! not route through the C `MPI_*` functions get entry points.
use super::overlay::{Entry, Fortran, Overlay, Statuses, Template};
use super::{base_type, Function, Param};
use std::fmt::Write as _;

/// The `SAFETY:` comment of a converted entry point's body.
const SAFETY_CONVERTED: &str = "the Fortran caller's arguments are valid as the binding requires (strings of their hidden lengths); converted to C, they go to the library's C wrapper of the same function, which has the C binding's contract.";
/// The `SAFETY:` comment of an exported name.
const SAFETY_EXPORT: &str =
    "the caller's arguments go unchanged to the entry point's body, which has the same contract.";
/// The `SAFETY:` comment of a forwarding entry point's body.
const SAFETY_FORWARD: &str = "the Fortran caller's arguments go unchanged (virtual handles made real) to the MPI's own Fortran function, found by name and of this binding's signature.";

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
/// (`core::fortran`).
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

fn gen_param(f: &Function, e: &Entry, p: &Param, g: &mut Gen) -> Result<(), String> {
    let (base, stars) = base_type(&p.ctype);
    let n = id(&p.name);
    // MPI_Init's argc/argv are not in the Fortran binding.
    if p.kind == "ARGUMENT_COUNT" || p.kind == "ARGUMENT_LIST" {
        if !e.fortran_no_argv {
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
        // casts (macros in its mpi.h), here the handle type's constructor
        // and field (each kind its own type), but for `MPI_File` (a
        // pointer there).
        g.params.push(format!("{n}: *mut MPI_Fint"));
        let (f2c, c2f) = if g.mpich && fam != "File" {
            (
                format!("sys::MPI_{fam}(*{n})"),
                format!("{n}_c.0 as MPI_Fint"),
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
                let written = match e.fortran_statuses {
                    Some(Statuses::All) => format!("fs::len({count})"),
                    Some(Statuses::AllIfFlag) => {
                        format!("if *flag != 0 {{ fs::len({count}) }} else {{ 0 }}")
                    }
                    Some(Statuses::Outcount) => "fs::len(outcount)".to_string(),
                    None => return Err("an array of statuses".into()),
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
        ("INDEX", "int", 1) if e.fortran_index_results => {
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
/// `mpif.h`, `ompi_x_f` (`use mpi_f08`), and `pmpi_x_` for those the
/// overlay marks `f08_via_pmpi`.
fn openmpi_names(f: &Function, e: &Entry) -> Vec<String> {
    let lower = f.name.to_ascii_lowercase();
    let stem = lower.strip_prefix("mpi_").unwrap();
    let mut names = vec![
        format!("{lower}_"),
        format!("{lower}__"),
        lower.clone(),
        f.name.to_ascii_uppercase(),
        format!("ompi_{stem}_f"),
    ];
    if e.f08_via_pmpi {
        names.push(format!("p{lower}_"));
    }
    names
}

/// A converted entry point: `body` is the name of its body (the function's
/// C name under Open MPI), exported under `names`.
fn gen_function(
    f: &Function,
    e: &Entry,
    out: &mut String,
    mpich: bool,
    body: &str,
    names: &[String],
) -> Result<(), String> {
    if f.variadic {
        return Err("variadic".into());
    }
    // Forwarded by the overlay's decision: the Fortran binding means
    // something else than the C one (addresses as integers, memory the MPI
    // allocates, results written later).
    if e.fortran == Some(Fortran::Forward) {
        return Err(e.fortran_why.clone().unwrap_or_default());
    }
    let lower = f.name.to_ascii_lowercase();
    let cfg = format!("#[cfg(ferry_has = \"{}\")]", f.name);
    if f.ret == "double" && f.params.is_empty() {
        for (i, name) in names.iter().enumerate() {
            writeln!(out, "{cfg}\n#[export_name = \"{name}\"]").unwrap();
            writeln!(
                out,
                "pub unsafe extern \"C\" fn f{i}_{body}() -> f64 {{\n    // SAFETY: {} takes no argument.\n    unsafe {{ crate::calls::boundary::guard_uncounted(\"{lower}\", 0.0, || super::generated::{}()) }}\n}}\n",
                f.name,
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
        gen_param(f, e, p, &mut g)?;
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
    writeln!(out, "    // SAFETY: {SAFETY_CONVERTED}").unwrap();
    writeln!(out, "    unsafe {{ fs::entry(\"{lower}\", ierror, || {{").unwrap();
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
    writeln!(out, "        rc\n    }}) }}\n}}\n").unwrap();
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
            "pub unsafe extern \"C\" fn f{i}_{fname}({param_list}) {{\n    // SAFETY: {SAFETY_EXPORT}\n    unsafe {{ {fname}({}) }}\n}}\n",
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
    e: &Entry,
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
    if e.fortran_forwarded_makes {
        // An object the library will not know: a process image refuses it.
        writeln!(
            post,
            "    crate::core::objects::forwarded_made(\"{}\");",
            f.name
        )
        .unwrap();
    }
    if e.fortran_keyval {
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
    writeln!(out, "    // SAFETY: {SAFETY_FORWARD}").unwrap();
    writeln!(
        out,
        "    unsafe {{ fs::forward(\"{lower}\", ierror, || {{\n        let Some(target) = TARGET.get() else {{ return fs::missing(\"{target}\"); }};\n        let target: {target_ty} = std::mem::transmute(target);"
    )
    .unwrap();
    // A collective counts its superstep as the C wrapper's does: the
    // synchronization must know a rank is inside it (or the others freeze
    // in front of it and it waits for ever). Entered before the handles are
    // made real: a regroup at the entry replaces the communicator.
    let collective = e.template == Template::Collective;
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
    writeln!(out, "        rc\n    }}) }}\n}}\n").unwrap();
    write_exports(out, &cfg, names, body, &param_list, &arg_names);
    Ok(())
}

/// The generated `src/entry/wrappers/fortran.rs`.
pub fn generate(functions: &[Function], overlay: &Overlay, source: &str) -> String {
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
         use crate::core::fortran;\n\
         use crate::sys::{self, constants as k, MPI_Fint};\n\
         use std::ffi::{c_char, c_void};\n\n",
    );
    let mut covered = 0;
    let mut skipped: Vec<(String, String)> = Vec::new();
    let mut forwarded: Vec<(String, String)> = Vec::new();
    for f in functions {
        let name = f.name.as_str();
        let e = overlay.get(name);
        let required = e.fortran == Some(Fortran::Required);
        // Large-count `_c` forms, the tool interface and extensions have no
        // `mpif.h` binding.
        if !required
            && (name.ends_with("_c") || name.starts_with("MPI_T_") || name.starts_with("MPIX_"))
        {
            continue;
        }
        let mut text = String::new();
        let names = openmpi_names(f, e);
        match gen_function(f, e, &mut text, false, name, &names) {
            Ok(()) => {
                out.push_str(&text);
                covered += 1;
            }
            Err(why) if !required => {
                let mut text = String::new();
                let stem = name.to_ascii_lowercase();
                let target = format!("ompi_{}_f", stem.strip_prefix("mpi_").unwrap());
                match gen_forward(f, e, &mut text, &target, name, &names) {
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
    writeln!(
        out,
        "// {} functions, each under 5 names (mpi_x_, mpi_x__, mpi_x, MPI_X, ompi_x_f), {} also as pmpi_x_ (mpi_f08).",
        covered + forwarded.len(),
        overlay.names(|e| e.f08_via_pmpi).len()
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

/// The generated `src/entry/wrappers/fortran_mpich.rs`: the Fortran entry points
/// under MPICH.
///
/// MPICH's `mpif.h` layer converts its arguments itself and calls the C
/// `MPI_*` functions (counted by the C wrappers; a Fortran handle is the C
/// handle, ferry's virtual one), but for the functions the overlay marks
/// `mpich_f77_forward` (see there why). Its
/// `use mpi_f08` layer calls the C `MPI_*` functions for the procedures
/// with a choice buffer (`mpi_send_f08ts_`) but `PMPI_*` for all the others
/// (`mpi_comm_rank_f08_`): those would go uncounted, with ferry's virtual
/// handles handed to MPICH. So every function without a choice buffer gets
/// an entry point under MPICH's `use mpi_f08` name (`mpi_x_f08_`, and
/// `mpi_x_f08_large_` for the large-count `_c` forms), converted the same
/// way as Open MPI's (a `type(MPI_Comm)` is its integer, a `type(MPI_Status)`
/// is C's status) or forwarded to MPICH's own.
pub fn generate_mpich(functions: &[Function], overlay: &Overlay, source: &str) -> String {
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
         use crate::core::fortran;\n\
         use crate::sys::{self, constants as k, MPI_Fint};\n\
         use std::ffi::{c_char, c_void};\n\n",
    );
    let mut covered = 0;
    let mut forwarded: Vec<(String, String)> = Vec::new();
    let mut skipped: Vec<(String, String)> = Vec::new();
    // mpif.h: the functions MPICH's own layer does not route through C, and
    // keyval creation.
    let f77_forward = overlay.names(|e| e.mpich_f77_forward);
    for name in &f77_forward {
        let f = functions
            .iter()
            .find(|f| f.name == *name)
            .unwrap_or_else(|| panic!("{name} is not in the spec"));
        let e = overlay.get(name);
        let lower = f.name.to_ascii_lowercase();
        let names = vec![
            format!("{lower}_"),
            format!("{lower}__"),
            lower.clone(),
            f.name.to_ascii_uppercase(),
        ];
        let body = format!("{}_f77", f.name);
        let target = format!("p{lower}_");
        if let Err(why) = gen_forward(f, e, &mut out, &target, &body, &names) {
            panic!("{name}: cannot forward: {why}");
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
        let e = overlay.get(name);
        let mut text = String::new();
        match gen_function(f, e, &mut text, true, &body, &names) {
            Ok(()) => {
                out.push_str(&text);
                covered += 1;
            }
            Err(why) => {
                let mut text = String::new();
                match gen_forward(f, e, &mut text, &export, &body, &names) {
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
        f77_forward.len(),
        f77_forward.join(", ")
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
