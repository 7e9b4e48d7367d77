//! The project's docs stand alone: README.md and everything under `docs/`
//! name no path outside the repository (a user who clones it has neither
//! the workplace's shared folder nor its working copies), and every
//! relative link of README.md and `docs/*.md` reaches a file of the
//! repository.
use std::path::{Path, PathBuf};

/// Paths that point outside a clone.
const OUTSIDE: &[&str] = &["../shared", "/work/", "DESIGN.md"];

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn docs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = vec![root.join("README.md")];
    files(&root.join("docs"), &mut out);
    out
}

#[test]
fn docs_name_no_path_outside_the_repository() {
    let mut found = Vec::new();
    for p in docs() {
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue; // (not text)
        };
        for (n, line) in text.lines().enumerate() {
            for o in OUTSIDE {
                if line.contains(o) {
                    found.push(format!("{}:{}: {o}", p.display(), n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "paths outside the repository:\n{}",
        found.join("\n")
    );
}

/// The targets of the Markdown links `](target)` of `text` that are
/// relative paths (no scheme, no anchor-only link).
fn relative_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let Some(j) = rest.find(')') else { break };
        let target = rest[..j].split('#').next().unwrap_or("").trim();
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            out.push(target.to_string());
        }
        rest = &rest[j..];
    }
    out
}

#[test]
fn relative_links_reach_files_of_the_repository() {
    let mut broken = Vec::new();
    for p in docs()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
    {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let dir = p.parent().unwrap_or(Path::new("."));
        for l in relative_links(&text) {
            if !dir.join(&l).exists() {
                broken.push(format!("{}: {l}", p.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links to nothing:\n{}",
        broken.join("\n")
    );
}

#[test]
fn links_are_read_from_markdown() {
    let t = "see [a](docs/a.md#x), [b](https://x.org/y) and [c](#top) or [d](../e.md)";
    assert_eq!(relative_links(t), vec!["docs/a.md", "../e.md"]);
}
