//! The audience service (see the module documentation of `services`).
