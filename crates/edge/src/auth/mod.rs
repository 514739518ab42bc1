//! Who may pass the edge: the htpasswd file and its password hashes.

pub mod apr1;
pub mod htpasswd;
