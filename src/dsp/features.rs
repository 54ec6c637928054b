//! Feature extractor (in progress).
