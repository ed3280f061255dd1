//! A chart as it arrives from outside in OCI form: a config blob and a chart archive that must
//! agree. Every way a chart enters the cache from elsewhere (`chart pull`, `sync … cache:`,
//! the pull-through of `serve`, a sync out of an OCI layout) checks it here.

use std::io::Read;

use super::Metadata;
use super::archive;

/// The largest chart config blob accepted (Helm's are a few KiB: Chart.yaml as JSON).
pub const MAX_CONFIG: u64 = 1 << 20;
/// The largest provenance file accepted, from anywhere (Helm's are a few KiB).
pub const MAX_PROV: u64 = 1 << 20;
/// The largest chart layer accepted: an archive that unpacks within Helm's 100 MiB cannot be
/// much larger than that compressed.
pub const MAX_LAYER: u64 = archive::MAX_UNPACKED + (1 << 20);

/// Refuses, before anything is downloaded, a chart manifest whose config, chart layer or
/// provenance layer declares more than these limits (the sizes are outside input too).
pub fn check_sizes(manifest: &crate::oci::Manifest) -> Result<(), String> {
    let layer = manifest.chart_layer();
    let limits = [
        Some((&manifest.config, MAX_CONFIG, "config")),
        layer.map(|l| (l, MAX_LAYER, "chart layer")),
        manifest
            .prov_layer()
            .map(|p| (p, MAX_PROV, "provenance layer")),
    ];
    for (desc, limit, what) in limits.into_iter().flatten() {
        if desc.size > limit {
            return Err(format!(
                "its {what} is {} bytes, over the limit of {} KiB",
                desc.size,
                limit >> 10
            ));
        }
    }
    Ok(())
}

/// Checks a chart's config blob and archive: the config within [`MAX_CONFIG`], with a valid
/// chart name and version; the archive readable within Helm's limits; and the archive's
/// Chart.yaml naming the same chart and version as the config, since `chart list`, the
/// cache's `charts/` markers and the served index all go by the config. Returns the config's
/// metadata, or why the artifact is not an acceptable chart.
pub fn check(config: &[u8], content: impl Read) -> Result<Metadata, String> {
    if config.len() as u64 > MAX_CONFIG {
        return Err(format!(
            "the config blob is {} bytes, over the limit of {} KiB",
            config.len(),
            MAX_CONFIG >> 10
        ));
    }
    let metadata = Metadata::from_registry_config(config).map_err(|e| format!("config: {e}"))?;
    let (archived, _) = archive::inspect(content).map_err(|e| format!("chart layer: {e}"))?;
    if (archived.name.as_str(), archived.version.as_str())
        != (metadata.name.as_str(), metadata.version.as_str())
    {
        return Err(format!(
            "the config names chart {:?} version {:?}, but the archive's Chart.yaml says {:?} version {:?}",
            metadata.name, metadata.version, archived.name, archived.version
        ));
    }
    Ok(metadata)
}
