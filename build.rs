// The bundled scripts/ and stdlib/ are embedded with include_dir, which cargo does not track: rebuild
// when any file under them changes.
fn main() {
    println!("cargo:rerun-if-changed=scripts");
    println!("cargo:rerun-if-changed=stdlib");
}
