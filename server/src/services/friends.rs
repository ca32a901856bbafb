//! The friends service (see the module documentation of `services`).
