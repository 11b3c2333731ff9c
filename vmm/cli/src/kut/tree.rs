//! The test tree `vmm kut DIR` runs, and the only way a `file =` value
//! becomes a kernel path: resolved (symlinks and `..` followed) to a
//! regular file inside DIR.
//!
//! A tree comes from elsewhere: `file = ../../../etc/passwd`, an absolute
//! path, a symlink out of the tree or a symlink loop must never reach
//! `vmm run --kernel`. Each is a reason to skip the test, which the
//! runner reports. What it does not do: guard against a tree that changes
//! while the suite runs (the checked path is the one handed over, so a
//! component swapped for a symlink afterwards is followed; a tree is
//! trusted not to race its own runner).

use std::io;
use std::path::{Path, PathBuf};

use kut_cfg::excerpt;

/// A tree's directories, resolved once.
#[derive(Clone, Debug)]
pub struct Tree {
    /// DIR, canonical: every test file must resolve inside it.
    root: PathBuf,
    /// The directory of the configuration file (DIR or DIR/x86),
    /// canonical: `file =` values are relative to it.
    base: PathBuf,
}

impl Tree {
    /// The tree at `dir` whose configuration file is in `base`.
    pub fn new(dir: &Path, base: &Path) -> io::Result<Tree> {
        Ok(Tree { root: dir.canonicalize()?, base: base.canonicalize()? })
    }

    /// DIR, canonical.
    #[cfg(test)]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The kernel a `file =` value names, or why it cannot be run.
    pub fn test_file(&self, file: &str) -> Result<PathBuf, String> {
        let shown = excerpt(file);
        let real = match self.base.join(file).canonicalize() {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(format!("test file {shown} not found")),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(format!("test file {shown} is a symlink loop ({e})"))
            }
            Err(e) => return Err(format!("cannot resolve test file {shown}: {e}")),
        };
        if !real.starts_with(&self.root) {
            return Err(format!(
                "test file {shown} resolves to {}, outside the tree {}",
                excerpt(&real.to_string_lossy()),
                excerpt(&self.root.to_string_lossy())
            ));
        }
        match std::fs::metadata(&real) {
            Ok(m) if m.is_file() => Ok(real),
            Ok(m) => Err(format!("test file {shown} is not a regular file ({:?})", m.file_type())),
            Err(e) => Err(format!("cannot resolve test file {shown}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// Item 10 of issue 20: `file =` values that leave the tree were run.
    #[test]
    fn only_regular_files_inside_the_tree_are_kernels() {
        let top = std::env::temp_dir().join(format!("vmm-kut-tree-{}", std::process::id()));
        let dir = top.join("tree");
        std::fs::create_dir_all(dir.join("x86")).unwrap();
        std::fs::create_dir_all(top.join("outside")).unwrap();
        std::fs::write(top.join("outside/k.flat"), b"k").unwrap();
        std::fs::write(dir.join("x86/in.flat"), b"k").unwrap();
        std::fs::write(dir.join("up.flat"), b"k").unwrap();
        symlink("../../outside/k.flat", dir.join("x86/out.flat")).unwrap();
        symlink("in.flat", dir.join("x86/alias.flat")).unwrap();
        symlink("loop2", dir.join("x86/loop1")).unwrap();
        symlink("loop1", dir.join("x86/loop2")).unwrap();
        std::fs::create_dir_all(dir.join("x86/sub.flat")).unwrap();
        let t = Tree::new(&dir, &dir.join("x86")).unwrap();
        let root = dir.canonicalize().unwrap();
        assert_eq!(t.test_file("in.flat").unwrap(), root.join("x86/in.flat"));
        assert_eq!(t.test_file("alias.flat").unwrap(), root.join("x86/in.flat"));
        // `..` that stays inside DIR is fine.
        assert_eq!(t.test_file("../up.flat").unwrap(), root.join("up.flat"));
        for (file, why) in [
            ("../../outside/k.flat", "outside the tree"),
            ("out.flat", "outside the tree"),
            ("/etc/passwd", "outside the tree"),
            ("../../../../../../../../etc/passwd", "outside the tree"),
            ("loop1", "symlink loop"),
            ("missing.flat", "not found"),
            ("sub.flat", "not a regular file"),
            ("", "not a regular file"),
        ] {
            let e = t.test_file(file).unwrap_err();
            assert!(e.contains(why), "{file}: {e}");
        }
        std::fs::remove_dir_all(&top).unwrap();
    }
}
