#!/usr/bin/env python3
"""Snapshot the MPI Forum's C API description into spec/mpi-c-api.json.

The MPI Standard's machine-readable API comes with `pympistandard` (PyPI).
This script reduces it to what ferry's wrapper generator needs: for every C
binding (and its large-count `_c` variant) the return type and, per
parameter, its C type, its semantic kind (COMMUNICATOR, REQUEST, ...), its
direction and its array length expression. The MPI-1 functions removed in
MPI-3.0 are still exported by MPICH and Open MPI, so they are appended from
the table below (they appear in no current standard).

Usage: python3 codegen/extract_spec.py [--check]   (needs pympistandard)
"""
import json
import re
import sys
from pathlib import Path

import pympistandard as std

OUT = Path(__file__).resolve().parent.parent / "spec" / "mpi-c-api.json"

# Removed in MPI-3.0, still exported by both libraries (kind, direction).
REMOVED_MPI1 = {
    "int MPI_Address(void* location, MPI_Aint* address)":
        [("BUFFER", "in"), ("DISPLACEMENT", "out")],
    "int MPI_Errhandler_create(MPI_Handler_function* function, MPI_Errhandler* errhandler)":
        [("FUNCTION", "in"), ("ERRHANDLER", "out")],
    "int MPI_Errhandler_get(MPI_Comm comm, MPI_Errhandler* errhandler)":
        [("COMMUNICATOR", "in"), ("ERRHANDLER", "out")],
    "int MPI_Errhandler_set(MPI_Comm comm, MPI_Errhandler errhandler)":
        [("COMMUNICATOR", "in"), ("ERRHANDLER", "in")],
    "int MPI_Type_extent(MPI_Datatype datatype, MPI_Aint* extent)":
        [("DATATYPE", "in"), ("DISPLACEMENT", "out")],
    "int MPI_Type_hindexed(int count, int array_of_blocklengths[], MPI_Aint array_of_displacements[], MPI_Datatype oldtype, MPI_Datatype* newtype)":
        [("ARRAY_LENGTH", "in"), ("NUM", "in"), ("DISPLACEMENT", "in"), ("DATATYPE", "in"), ("DATATYPE", "out")],
    "int MPI_Type_hvector(int count, int blocklength, MPI_Aint stride, MPI_Datatype oldtype, MPI_Datatype* newtype)":
        [("NUM", "in"), ("NUM", "in"), ("DISPLACEMENT", "in"), ("DATATYPE", "in"), ("DATATYPE", "out")],
    "int MPI_Type_lb(MPI_Datatype datatype, MPI_Aint* displacement)":
        [("DATATYPE", "in"), ("DISPLACEMENT", "out")],
    "int MPI_Type_struct(int count, int array_of_blocklengths[], MPI_Aint array_of_displacements[], MPI_Datatype array_of_types[], MPI_Datatype* newtype)":
        [("ARRAY_LENGTH", "in"), ("NUM", "in"), ("DISPLACEMENT", "in"), ("DATATYPE", "in"), ("DATATYPE", "out")],
    "int MPI_Type_ub(MPI_Datatype datatype, MPI_Aint* displacement)":
        [("DATATYPE", "in"), ("DISPLACEMENT", "out")],
}

# MPI extensions (MPIX_) that take the handles the library virtualizes:
# MPICH 5's fault-tolerance (ULFM) calls and a few others. Not in any
# standard; wrapped where the MPI's header declares them.
EXTENSIONS = {
    "int MPIX_Comm_revoke(MPI_Comm comm)": [("COMMUNICATOR", "in")],
    "int MPIX_Comm_shrink(MPI_Comm comm, MPI_Comm* newcomm)": [("COMMUNICATOR", "in"), ("COMMUNICATOR", "out")],
    "int MPIX_Comm_failure_ack(MPI_Comm comm)": [("COMMUNICATOR", "in")],
    "int MPIX_Comm_failure_get_acked(MPI_Comm comm, MPI_Group* failedgrp)": [("COMMUNICATOR", "in"), ("GROUP", "out")],
    "int MPIX_Comm_agree(MPI_Comm comm, int* flag)": [("COMMUNICATOR", "in"), ("LOGICAL", "inout")],
    "int MPIX_Comm_get_failed(MPI_Comm comm, MPI_Group* failedgrp)": [("COMMUNICATOR", "in"), ("GROUP", "out")],
    "int MPIX_Comm_test_threadcomm(MPI_Comm comm, int* flag)": [("COMMUNICATOR", "in"), ("LOGICAL", "out")],
    "int MPIX_Request_is_complete(MPI_Request request)": [("REQUEST", "in")],
    "int MPIX_Stream_comm_create(MPI_Comm comm, MPIX_Stream stream, MPI_Comm* newcomm)": [("COMMUNICATOR", "in"), ("STREAM", "in"), ("COMMUNICATOR", "out")],
    "int MPIX_Comm_get_stream(MPI_Comm comm, int idx, MPIX_Stream* stream)": [("COMMUNICATOR", "in"), ("INDEX", "in"), ("STREAM", "out")],
}

PROTO = re.compile(r"^\s*(?P<ret>[\w ]+?[\s\*]*)\s*(?P<name>MPIX?_\w+)\((?P<args>.*)\)\s*$")


def split_param(text):
    """'const MPI_Datatype sendtypes[]' -> ('const MPI_Datatype*', 'sendtypes')."""
    text = text.strip()
    # `int ranges[][3]` is a pointer to int[3]: an int* as far as the ABI goes.
    text = re.sub(r"\[\]\[\d+\]$", "[]", text)
    array = text.endswith("[]")
    if array:
        text = text[:-2].strip()
    m = re.match(r"^(.*?)([A-Za-z_]\w*)$", text)
    ctype, name = m.group(1).strip(), m.group(2)
    ctype = re.sub(r"\s*\*", "*", ctype)
    if array:
        ctype += "*"
    return ctype, name


def parse_proto(proto):
    m = PROTO.match(proto)
    if not m:
        raise ValueError(f"cannot parse prototype: {proto}")
    args = m.group("args").strip()
    variadic = False
    params = []
    if args and args != "void":
        for a in args.split(","):
            a = a.strip()
            if a in ("...", r"\ldots"):
                variadic = True
                continue
            params.append(split_param(a))
    return m.group("name"), m.group("ret").strip(), params, variadic


def entry(proto, spec_params):
    name, ret, params, variadic = parse_proto(proto)
    if len(params) != len(spec_params):
        raise ValueError(f"{name}: {len(params)} C parameters, {len(spec_params)} in spec")
    out = []
    for (ctype, pname), sp in zip(params, spec_params):
        out.append({"name": pname, "ctype": ctype, "kind": sp[0], "dir": sp[1], "length": sp[2] if len(sp) > 2 else None})
    return {"name": name, "ret": ret, "variadic": variadic, "params": out}


def from_standard():
    std.use_api_version(1)
    funcs = []
    for key in sorted(std.PROCEDURES):
        p = std.PROCEDURES[key]
        exprs = [p.express.iso_c]
        if p.express.embiggen is not None:
            exprs.append(p.express.embiggen.iso_c)
        for e in exprs:
            if e is None:
                continue
            proto = str(e)
            _, _, cparams, _ = parse_proto(proto)
            # The ISO C expression lists the parameters in C order; take the
            # semantic information from the procedure's own parameter records
            # of the same name (ierror and friends never appear in C).
            by_name = {q["name"]: q for q in p._parseset["parameters"]}
            sp = []
            for _, pname in cparams:
                q = by_name[pname]
                length = q["length"]
                if isinstance(length, (list, tuple)):
                    length = " * ".join(str(x) for x in length)
                sp.append((q["kind"], q["param_direction"], None if length is None else str(length)))
            funcs.append(entry(proto, sp))
    for proto, sp in REMOVED_MPI1.items():
        e = entry(proto, sp)
        e["removed"] = True
        funcs.append(e)
    for proto, sp in EXTENSIONS.items():
        e = entry(proto, sp)
        e["extension"] = True
        funcs.append(e)
    funcs.sort(key=lambda f: f["name"])
    return {"source": f"pympistandard {std.__version__}", "functions": funcs}


def main():
    text = json.dumps(from_standard(), indent=1, sort_keys=True) + "\n"
    if "--check" in sys.argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run python3 codegen/extract_spec.py", file=sys.stderr)
            sys.exit(1)
        print(f"{OUT}: up to date")
        return
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
