//! The Log Analytics port (async trait) and its adapters: offline exports and the bundled demo tenant.
