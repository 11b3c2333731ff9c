//! Which programs to run: the files named on the command line, as
//! given, and for each directory named, every regular executable ELF
//! file in it (not in its subdirectories), by name. A directory's hidden
//! files, files that are not ELF, and files whose extension says they are
//! data, sources, scripts or libraries ([`SKIPPED_EXTENSIONS`]) are left
//! out. Programs are named by their file name, which must be unique.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Extensions of files in a directory that are never programs.
pub const SKIPPED_EXTENSIONS: &[&str] =
    &["txt", "md", "log", "json", "xml", "toml", "cfg", "c", "h", "o", "a", "so", "sh", "py", "pl", "patch", "diff"];

/// Why the programs could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// A path could not be looked at (missing, unreadable).
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A path is neither a file nor a directory.
    #[error("{0} is not a file or a directory")]
    Special(PathBuf),
    /// Nothing to run.
    #[error("no programs in {0} (a directory's programs are its executable ELF files)")]
    None(String),
    /// Two programs with one name.
    #[error("two programs named {name}: {first} and {second}")]
    SameName {
        /// The name.
        name: String,
        /// One.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },
}

/// One program to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// Its file name.
    pub name: String,
    /// Its path.
    pub path: PathBuf,
}

/// The programs `inputs` name, directories expanded, in order.
pub fn programs(inputs: &[PathBuf]) -> Result<Vec<Program>, DiscoverError> {
    let mut out: Vec<Program> = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(read(input))?;
        if meta.is_dir() {
            let mut found: Vec<PathBuf> = Vec::new();
            for entry in std::fs::read_dir(input).map_err(read(input))? {
                let entry = entry.map_err(read(input))?;
                if is_program(&entry.path()) {
                    found.push(entry.path());
                }
            }
            found.sort();
            out.extend(found.into_iter().map(program));
        } else if meta.is_file() {
            out.push(program(input.clone()));
        } else {
            return Err(DiscoverError::Special(input.clone()));
        }
    }
    if out.is_empty() {
        let names: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
        return Err(DiscoverError::None(names.join(", ")));
    }
    let mut seen = BTreeSet::new();
    for p in &out {
        if !seen.insert(p.name.as_str()) {
            let first = out.iter().find(|q| q.name == p.name).map_or_else(PathBuf::new, |q| q.path.clone());
            return Err(DiscoverError::SameName { name: p.name.clone(), first, second: p.path.clone() });
        }
    }
    Ok(out)
}

/// The error of reading `path`.
fn read(path: &Path) -> impl Fn(std::io::Error) -> DiscoverError + '_ {
    move |source| DiscoverError::Read { path: path.to_owned(), source }
}

fn program(path: PathBuf) -> Program {
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    Program { name, path }
}

/// Whether a directory's entry is a program to run.
fn is_program(path: &Path) -> bool {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy()) else { return false };
    if name.starts_with('.') {
        return false;
    }
    if path.extension().is_some_and(|e| SKIPPED_EXTENSIONS.contains(&e.to_string_lossy().to_ascii_lowercase().as_str()))
    {
        return false;
    }
    // Follows links; a special file is never opened.
    let Ok(meta) = std::fs::metadata(path) else { return false };
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return false;
    }
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && magic == *b"\x7fELF"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, bytes: &[u8], mode: u32) {
        std::fs::write(dir.join(name), bytes).unwrap();
        std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn directories_hold_executable_elves() {
        let dir = std::env::temp_dir().join(format!("vmm-ltest-disc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        file(&dir, "b", b"\x7fELF rest", 0o755);
        file(&dir, "a", b"\x7fELF rest", 0o700);
        file(&dir, "script", b"#!/bin/sh\n", 0o755);
        file(&dir, "data", b"\x7fELF rest", 0o644);
        file(&dir, "notes.txt", b"\x7fELF rest", 0o755);
        file(&dir, "lib.so", b"\x7fELF rest", 0o755);
        file(&dir, ".hidden", b"\x7fELF rest", 0o755);
        file(&dir, "tiny", b"\x7fE", 0o755);
        file(&dir.join("sub"), "c", b"\x7fELF rest", 0o755);
        std::os::unix::fs::symlink(dir.join("b"), dir.join("link")).unwrap();
        std::os::unix::fs::symlink(dir.join("nowhere"), dir.join("dangling")).unwrap();
        let p = programs(std::slice::from_ref(&dir)).unwrap();
        assert_eq!(p.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["a", "b", "link"]);
        // Files are taken as given, ELF or not.
        let p = programs(&[dir.join("script"), dir.join("sub")]).unwrap();
        assert_eq!(p.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["script", "c"]);
        assert!(matches!(programs(&[dir.join("a"), dir.clone()]), Err(DiscoverError::SameName { .. })));
        assert!(matches!(programs(&[dir.join("missing")]), Err(DiscoverError::Read { .. })));
        std::fs::create_dir_all(dir.join("empty")).unwrap();
        let e = programs(&[dir.join("empty")]).unwrap_err();
        assert!(e.to_string().starts_with("no programs in"), "{e}");
        assert!(matches!(programs(&[PathBuf::from("/dev/null")]), Err(DiscoverError::Special(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
