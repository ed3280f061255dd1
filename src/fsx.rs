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

/// Makes a file world-readable, mode 0644, as Helm's cache files are (temp files start 0600).
pub fn make_public(file: &std::fs::File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Ok(())
    }
}
