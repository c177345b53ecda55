//! Embeds the built web UI (`web/dist`, made by `npm run build` in `web/`) into the binary.
//!
//! Writes `$OUT_DIR/webui.rs` with one `(path, bytes)` entry per file. Without a build, the
//! table holds a single page that says how to build the UI, so the API still compiles and runs
//! (the scripts always build the UI first).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let dist = manifest.join("../../web/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    println!("cargo:rerun-if-changed={}", dist.join("index.html").display());
    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        collect(&dist, &dist, &mut files);
    }
    files.sort();
    let mut out = String::from("/// The embedded web UI: (path relative to `web/dist`, contents).\n");
    out.push_str("pub static FILES: &[(&str, &[u8])] = &[\n");
    for (rel, abs) in &files {
        writeln!(out, "    ({rel:?}, include_bytes!({:?})),", abs.display().to_string()).expect("write to a String");
    }
    out.push_str("];\n");
    writeln!(
        out,
        "/// Whether `web/dist` was built when this binary was compiled.\npub const BUILT: bool = {};",
        !files.is_empty()
    )
    .expect("write to a String");
    let target = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("webui.rs");
    std::fs::write(target, out).expect("write webui.rs");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_dir() {
            collect(root, &path, files);
        } else if let Ok(rel) = path.strip_prefix(root) {
            files.push((rel.to_string_lossy().replace('\\', "/"), path.canonicalize().unwrap_or(path.clone())));
        }
    }
}
