//! Temporary directories that clean up after themselves.
//!
//! [`temp_dir`] makes a fresh, uniquely named directory under the system temp directory
//! (`savanna-<tag>-XXXXXX`); the returned [`TempDir`] removes it, with everything in it, when it
//! is dropped: at the end of the test, and also while a failing test unwinds. Keep the guard
//! alive for as long as anything (a server, a child process) uses the directory.

use std::{
    fmt,
    ops::Deref,
    path::{Path, PathBuf},
};

/// A directory removed (recursively) on drop. Dereferences to its [`Path`].
pub struct TempDir(tempfile::TempDir);

/// A fresh, empty directory for one test; `tag` names it for whoever looks in the temp dir
/// while the test runs.
pub fn temp_dir(tag: &str) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("savanna-{tag}-"))
        .tempdir()
        .unwrap_or_else(|e| panic!("creating a temporary directory for {tag}: {e}"));
    TempDir(dir)
}

impl TempDir {
    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// The path as an owned value (the directory still goes when the guard is dropped).
    pub fn to_path_buf(&self) -> PathBuf {
        self.0.path().to_path_buf()
    }

    /// Keeps the directory after all (for a failure whose files are worth reading): it is no
    /// longer removed, and its path is returned.
    pub fn keep(self) -> PathBuf {
        self.0.keep()
    }
}

impl Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

impl fmt::Debug for TempDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TempDir({})", self.0.path().display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_goes_when_the_guard_drops() {
        let dir = temp_dir("dir-drop");
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("a/b/c.txt"), "x").unwrap();
        let path = dir.to_path_buf();
        assert!(path.file_name().unwrap().to_str().unwrap().starts_with("savanna-dir-drop-"));
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn the_directory_goes_when_a_test_panics() {
        let mut seen = None;
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let dir = temp_dir("dir-panic");
            seen = Some(dir.to_path_buf());
            panic!("a failing test");
        }));
        assert!(caught.is_err());
        assert!(!seen.unwrap().exists());
    }

    #[test]
    fn two_dirs_with_one_tag_differ() {
        let (a, b) = (temp_dir("dir-twice"), temp_dir("dir-twice"));
        assert_ne!(a.path(), b.path());
    }

    #[test]
    fn a_kept_directory_stays() {
        let kept = temp_dir("dir-keep").keep();
        assert!(kept.is_dir());
        std::fs::remove_dir_all(kept).unwrap();
    }
}
