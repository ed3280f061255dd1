//! Charts as files: the `Chart.yaml` model, `.helmignore` rules, packaging a directory,
//! reading archives safely, and the images a chart runs. No network and no cache here; the
//! store and the tasks build on it.

pub mod archive;
pub mod artifact;
pub mod ignore;
pub mod images;
pub mod metadata;
pub mod package;

pub use metadata::Metadata;
