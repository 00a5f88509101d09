//! Project tasks that cargo alone does not do.
fn main() {}
