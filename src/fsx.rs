//! Small filesystem shims shared by the chart and store modules.

use std::io;
use std::path::Path;

/// Creates a symlink at `at` pointing to `target` (relative or not, as given).
#[cfg(unix)]
pub fn symlink(target: &str, at: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, at)
}

/// The cache and chart archives rely on symlinks, which this platform does not provide.
#[cfg(not(unix))]
pub fn symlink(_target: &str, at: &Path) -> io::Result<()> {
    Err(io::Error::other(format!(
        "{}: cannot create a symlink on this platform",
        at.display()
    )))
}
