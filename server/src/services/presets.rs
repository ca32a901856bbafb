//! The presets service (see the module documentation of `services`).
