//! Device models for the VMM (filled in by the VMM issue).
