//! The roles service (see the module documentation of `services`).
