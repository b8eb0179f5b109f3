#[allow(dead_code)]
mod format;
fn main() {}
