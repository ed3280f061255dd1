//! cosign signatures (placeholder, filled in next).
