//! The layering of `src/` (docs/architecture.md): every file belongs to a
//! layer, the first folder under `src/`; a layer may use its own modules
//! and those of the layers before it in [`LAYERS`], never a later one.
//!
//! The test reads the sources (no build of the library is involved): it
//! strips comments, doc comments and literals, collects every path into
//! the crate (`crate::layer::...` in `use` trees and inline, `super::`
//! chains, the exported macros called as `crate::name!`), and fails on an
//! upward reference unless its edge (the file, the module it names) is in
//! [`DEBT`]. A `DEBT` entry whose edge no longer occurs fails too, so the
//! list can only shrink. A cycle between the modules of one layer fails
//! too, naming its modules and the edges that close it: inside a layer
//! the modules are ordered as well, so that a reader (and a new phase)
//! finds where each belongs.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The layers, lowest first.
const LAYERS: &[&str] = &["sys", "mem", "core", "calls", "protocol", "ops", "entry"];

/// Upward references tolerated: (file, module it names, why). Empty since
/// every one was paid (docs/architecture.md says how): a lower layer calls
/// up through `core::upcalls` instead. Never add one for new code.
const DEBT: &[(&str, &str, &str)] = &[];

/// A source file: where it is and the module it is.
struct File {
    /// Relative to the crate, `src/...`.
    rel: String,
    /// Its module path from the crate root (`[]` for `lib.rs`).
    module: Vec<String>,
    text: String,
}

/// One path into the crate found in a file.
struct Reference {
    file: usize,
    line: usize,
    /// The path as written, `crate::` or `super::` first.
    written: String,
    /// The module it names, from the crate root (`["protocol", "membership"]`).
    target: Vec<String>,
}

fn layer_rank(name: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == name)
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The module path of `src/<rel>`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !(parts.is_empty() && stem == "lib") && stem != "mod" {
        parts.push(stem.to_string());
    }
    parts
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The code of `src` with every comment (doc comments included) and the
/// contents of every string and character literal blanked out; newlines
/// stay, so positions keep their line.
fn strip(src: &str) -> Vec<char> {
    let s: Vec<char> = src.chars().collect();
    let n = s.len();
    let at = |i: usize| if i < n { s[i] } else { '\0' };
    let mut out = Vec::with_capacity(n);
    let blank = |out: &mut Vec<char>, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < n {
        let c = s[i];
        let prev = if i > 0 { s[i - 1] } else { ' ' };
        if c == '/' && at(i + 1) == '/' {
            while i < n && s[i] != '\n' {
                blank(&mut out, s[i]);
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < n {
                if s[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    out.extend([' ', ' ']);
                    i += 2;
                } else if s[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    out.extend([' ', ' ']);
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, s[i]);
                    i += 1;
                }
            }
        } else if c == 'r'
            && (!is_ident(prev) || (matches!(prev, 'b' | 'c') && i >= 2 && !is_ident(s[i - 2])))
            && matches!(at(i + 1), '"' | '#')
            && {
                let mut j = i + 1;
                while at(j) == '#' {
                    j += 1;
                }
                at(j) == '"'
            }
        {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            out.resize(out.len() + (j + 1 - i), ' ');
            i = j + 1;
            while i < n {
                if s[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                    out.resize(out.len() + hashes + 1, ' ');
                    i += hashes + 1;
                    break;
                }
                blank(&mut out, s[i]);
                i += 1;
            }
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < n && s[i] != '"' {
                if s[i] == '\\' {
                    blank(&mut out, s[i]);
                    i += 1;
                }
                if i < n {
                    blank(&mut out, s[i]);
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && at(i + 1) == '\\' {
            // An escaped character literal: '\n', '\'', '\u{..}'.
            let mut j = i + 3;
            while j < n && s[j] != '\'' {
                j += 1;
            }
            out.resize(out.len() + (j + 1 - i), ' ');
            i = j + 1;
        } else if c == '\'' && at(i + 2) == '\'' {
            out.extend([' ', ' ', ' ']);
            i += 3;
        } else {
            // Code, or a lifetime's quote.
            out.push(c);
            i += 1;
        }
    }
    out
}

/// A parser of the paths in stripped code.
struct Cursor<'a> {
    s: &'a [char],
    i: usize,
}

impl Cursor<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, t: &str) -> bool {
        let save = self.i;
        self.ws();
        for c in t.chars() {
            if self.s.get(self.i) != Some(&c) {
                self.i = save;
                return false;
            }
            self.i += 1;
        }
        true
    }
    fn keyword(&mut self, k: &str) -> bool {
        let save = self.i;
        if self.eat(k) && !self.s.get(self.i).copied().is_some_and(is_ident) {
            return true;
        }
        self.i = save;
        false
    }
    fn ident(&mut self) -> Option<String> {
        self.ws();
        let start = self.i;
        while self.i < self.s.len() && is_ident(self.s[self.i]) {
            self.i += 1;
        }
        if self.i == start {
            None
        } else {
            Some(self.s[start..self.i].iter().collect())
        }
    }
    /// The rest of a path after `crate::` (or after one of its segments):
    /// every full path, a `use` tree giving several.
    fn tree(&mut self, prefix: &[String], out: &mut Vec<Vec<String>>) {
        if self.eat("{") {
            loop {
                if self.eat("}") || self.i >= self.s.len() {
                    return;
                }
                let before = self.i;
                self.tree(prefix, out);
                if self.eat(",") && self.i > before {
                    continue;
                }
                // The group's end (or not a use tree after all: stop).
                self.eat("}");
                return;
            }
        }
        let mut path = prefix.to_vec();
        if self.eat("*") {
            path.push("*".into());
            out.push(path);
            return;
        }
        let Some(seg) = self.ident() else {
            out.push(path);
            return;
        };
        path.push(seg);
        if self.keyword("as") {
            self.ident();
            out.push(path);
            return;
        }
        let save = self.i;
        if self.eat("::") {
            self.ws();
            if self.s.get(self.i) == Some(&'<') {
                self.i = save;
                out.push(path);
            } else {
                self.tree(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

/// Every path into the crate in `file`.
fn references(
    index: usize,
    file: &File,
    macros: &BTreeMap<String, Vec<String>>,
    out: &mut Vec<Reference>,
) {
    let code = strip(&file.text);
    let mut line = 1;
    let mut depth = 0usize;
    // Inline modules open here (`mod tests { ... }`): name, brace depth.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut pending_mod: Option<String> = None;
    let word_at = |i: usize, w: &str| {
        (i == 0 || !is_ident(code[i - 1]))
            && code[i..].iter().take(w.len()).copied().eq(w.chars())
            && !code.get(i + w.len()).copied().is_some_and(is_ident)
    };
    let mut i = 0;
    while i < code.len() {
        let c = code[i];
        if c == '\n' {
            line += 1;
        } else if c == '{' {
            depth += 1;
            if let Some(name) = pending_mod.take() {
                inline.push((name, depth));
            }
        } else if c == '}' {
            if inline.last().is_some_and(|(_, d)| *d == depth) {
                inline.pop();
            }
            depth = depth.saturating_sub(1);
        } else if c == ';' {
            pending_mod = None;
        } else if word_at(i, "mod") {
            let mut cur = Cursor { s: &code, i: i + 3 };
            pending_mod = cur.ident();
            i += 3;
            continue;
        } else if (word_at(i, "crate") || (c == '$' && word_at(i + 1, "crate")))
            && !(i > 0 && code[i - 1] == ':')
        {
            let start = if c == '$' { i + 1 } else { i };
            let mut cur = Cursor {
                s: &code,
                i: start + 5,
            };
            if cur.eat("::") {
                let mut paths = Vec::new();
                cur.tree(&[], &mut paths);
                let written: String = code[i..cur.i]
                    .iter()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                let is_macro = code.get(cur.i) == Some(&'!');
                for p in paths {
                    let target = if is_macro && p.len() == 1 && macros.contains_key(&p[0]) {
                        macros[&p[0]].clone()
                    } else {
                        p
                    };
                    out.push(Reference {
                        file: index,
                        line,
                        written: written.clone(),
                        target,
                    });
                }
                line += code[i..cur.i].iter().filter(|c| **c == '\n').count();
                i = cur.i;
                continue;
            }
        } else if word_at(i, "super") && !(i > 0 && code[i - 1] == ':') {
            let mut base: Vec<String> = file.module.clone();
            base.extend(inline.iter().map(|(n, _)| n.clone()));
            let mut cur = Cursor { s: &code, i };
            let mut ok = true;
            while cur.eat("super") {
                if base.pop().is_none() || !cur.eat("::") {
                    ok = false;
                    break;
                }
            }
            if ok {
                let mut paths = Vec::new();
                cur.tree(&base, &mut paths);
                let written: String = code[i..cur.i]
                    .iter()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                for p in paths {
                    out.push(Reference {
                        file: index,
                        line,
                        written: written.clone(),
                        target: p,
                    });
                }
            }
            line += code[i..cur.i].iter().filter(|c| **c == '\n').count();
            i = cur.i.max(i + 5);
            continue;
        }
        i += 1;
    }
}

/// The macros exported at the crate root (`#[macro_export]`), by name:
/// the module that defines each.
fn exported_macros(files: &[File]) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for f in files {
        let code: String = strip(&f.text).into_iter().collect();
        let mut rest = code.as_str();
        while let Some(k) = rest.find("#[macro_export]") {
            rest = &rest[k + 15..];
            let t = rest.trim_start();
            if let Some(t) = t.strip_prefix("macro_rules!") {
                let name: String = t
                    .trim_start()
                    .chars()
                    .take_while(|c| is_ident(*c))
                    .collect();
                out.insert(name, f.module.clone());
            }
        }
    }
    out
}

/// The module a path names: as many of its segments as are modules (files
/// under `src/`), from the crate root.
fn resolve(path: &[String], modules: &BTreeSet<Vec<String>>) -> Vec<String> {
    let mut m = Vec::new();
    for seg in path {
        let mut next = m.clone();
        next.push(seg.clone());
        if modules.contains(&next) {
            m = next;
        } else {
            break;
        }
    }
    m
}

struct Scan {
    files: Vec<File>,
    refs: Vec<Reference>,
    modules: BTreeSet<Vec<String>>,
}

fn scan() -> Scan {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let mut paths = Vec::new();
    sources(&src, &mut paths);
    let files: Vec<File> = paths
        .iter()
        .map(|p| {
            let rel = p.strip_prefix(&src).unwrap();
            File {
                rel: format!("src/{}", rel.to_string_lossy()),
                module: module_of(rel),
                text: std::fs::read_to_string(p).unwrap(),
            }
        })
        .collect();
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| f.module.clone()).collect();
    let macros = exported_macros(&files);
    let mut refs = Vec::new();
    for (k, f) in files.iter().enumerate() {
        references(k, f, &macros, &mut refs);
    }
    for r in &mut refs {
        r.target = resolve(&r.target, &modules);
    }
    Scan {
        files,
        refs,
        modules,
    }
}

#[test]
fn every_file_is_in_a_layer() {
    let s = scan();
    let mut wrong = Vec::new();
    for f in &s.files {
        match f.module.first() {
            None => assert_eq!(f.rel, "src/lib.rs"),
            Some(l) if layer_rank(l).is_none() => wrong.push(f.rel.clone()),
            Some(_) => {}
        }
    }
    assert!(
        wrong.is_empty(),
        "files outside every layer (the first folder under src/ must be one of {LAYERS:?}): {wrong:?}"
    );
    assert!(s.modules.len() > LAYERS.len());
}

#[test]
fn no_layer_uses_a_higher_one() {
    let s = scan();
    let mut report = String::new();
    let mut found: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut per_pair: BTreeMap<(String, String), BTreeSet<(String, String)>> = BTreeMap::new();
    for r in &s.refs {
        let f = &s.files[r.file];
        let (Some(from), Some(to)) = (f.module.first(), r.target.first()) else {
            continue;
        };
        let (Some(a), Some(b)) = (layer_rank(from), layer_rank(to)) else {
            continue;
        };
        if b <= a {
            continue;
        }
        let to_module = r.target.join("::");
        let edge = (f.rel.clone(), to_module.clone());
        *found.entry(edge.clone()).or_default() += 1;
        per_pair
            .entry((from.clone(), to.clone()))
            .or_default()
            .insert(edge.clone());
        if !DEBT
            .iter()
            .any(|(file, m, _)| *file == edge.0 && *m == edge.1)
        {
            writeln!(
                report,
                "{}:{}: `{}` names {to_module}: layer `{from}` may not use the higher layer `{to}` \
                 (edge not in DEBT)",
                f.rel, r.line, r.written
            )
            .unwrap();
        }
    }
    let mut seen = BTreeSet::new();
    for (file, m, why) in DEBT {
        if !seen.insert((*file, *m)) {
            writeln!(report, "DEBT lists ({file}, {m}) twice").unwrap();
        }
        if why.trim().is_empty() {
            writeln!(report, "DEBT entry ({file}, {m}) gives no reason").unwrap();
        }
        if !found.contains_key(&(file.to_string(), m.to_string())) {
            writeln!(
                report,
                "DEBT entry ({file}, {m}) no longer occurs as an upward reference: remove it from DEBT"
            )
            .unwrap();
        }
    }
    println!("upward edges by layer pair (all in DEBT when the test passes):");
    for ((from, to), edges) in &per_pair {
        println!("  {from} -> {to}: {}", edges.len());
    }
    assert!(report.is_empty(), "layering violations:\n{report}");
}

/// Strongly connected components of a graph (Tarjan), those of more than
/// one node.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'g> {
        g: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on: BTreeSet<&'g str>,
        out: Vec<Vec<String>>,
    }
    impl<'g> T<'g> {
        fn visit(&mut self, v: &'g str) {
            let k = self.index.len();
            self.index.insert(v, k);
            self.low.insert(v, k);
            self.stack.push(v);
            self.on.insert(v);
            for w in self.g.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.on.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut c = Vec::new();
                loop {
                    let w = self.stack.pop().unwrap();
                    self.on.remove(w);
                    c.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if c.len() > 1 {
                    c.sort();
                    self.out.push(c);
                }
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

/// Each module and the modules of its own layer it names.
fn same_layer_graph(s: &Scan) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &s.refs {
        let from = &s.files[r.file].module;
        if from.is_empty() || r.target.first() != from.first() || r.target == *from {
            continue;
        }
        graph
            .entry(from.join("::"))
            .or_default()
            .insert(r.target.join("::"));
    }
    graph
}

/// The cycles of `graph`, each with the edges inside it, one per line.
fn describe_cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    cycles(graph)
        .iter()
        .map(|c| {
            let members: BTreeSet<&String> = c.iter().collect();
            let edges: Vec<String> = c
                .iter()
                .flat_map(|a| {
                    graph[a]
                        .iter()
                        .filter(|b| members.contains(b))
                        .map(move |b| format!("{a} -> {b}"))
                })
                .collect();
            format!("{{{}}}: {}", c.join(", "), edges.join("; "))
        })
        .collect()
}

#[test]
fn no_cycle_inside_a_layer() {
    let found = describe_cycles(&same_layer_graph(&scan()));
    assert!(
        found.is_empty(),
        "modules of one layer that use each other (a cycle; move what both \
         need into a module below them, or pass it in):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn a_cycle_is_found() {
    let edge = |a: &str, b: &[&str]| (a.to_string(), b.iter().map(|x| x.to_string()).collect());
    let graph: BTreeMap<String, BTreeSet<String>> = [
        edge("ops::a", &["ops::b"]),
        edge("ops::b", &["ops::c"]),
        edge("ops::c", &["ops::a", "ops::d"]),
        edge("ops::d", &[]),
    ]
    .into_iter()
    .collect();
    let found = describe_cycles(&graph);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("{ops::a, ops::b, ops::c}"),
        "{found:?}"
    );
    assert!(found[0].contains("ops::c -> ops::a"), "{found:?}");
    let acyclic: BTreeMap<String, BTreeSet<String>> =
        [edge("ops::a", &["ops::b"]), edge("ops::b", &[])]
            .into_iter()
            .collect();
    assert!(describe_cycles(&acyclic).is_empty());
}

#[test]
fn the_scanner_reads_paths_not_comments() {
    let text = "//! crate::entry::api in a doc comment\n\
                use crate::{core::{handles, ops as o}, sys::{self, constants as k, MPI_Fint}};\n\
                /* crate::ops::migration /* nested */ crate::entry */\n\
                fn f() { let s = \"crate::entry::special\"; let c = '\"'; \n\
                crate::protocol::regroup::now(); }\n\
                mod tests { use super::*; use super::super::sys; }\n";
    let file = File {
        rel: "src/calls/x.rs".into(),
        module: vec!["calls".into(), "x".into()],
        text: text.into(),
    };
    let mut refs = Vec::new();
    references(0, &file, &BTreeMap::new(), &mut refs);
    let got: Vec<(usize, String)> = refs.iter().map(|r| (r.line, r.target.join("::"))).collect();
    let want: Vec<(usize, String)> = [
        (2, "core::handles"),
        (2, "core::ops"),
        (2, "sys::self"),
        (2, "sys::constants"),
        (2, "sys::MPI_Fint"),
        (5, "protocol::regroup::now"),
        (6, "calls::x::*"),
        (6, "calls::sys"),
    ]
    .iter()
    .map(|(l, p)| (*l, p.to_string()))
    .collect();
    assert_eq!(got, want);
}
