// Shared by build.rs and tests/binary_layout.rs (`include!`d by both).

/// `major.minor` of the machine's glibc (`getconf GNU_LIBC_VERSION` prints `glibc 2.36`);
/// `None` when it cannot be told.
fn glibc_version() -> Option<(u32, u32)> {
    let out = std::process::Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let version = text.split_whitespace().nth(1)?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}
