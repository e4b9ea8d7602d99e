fn main() {
    eprintln!("spid-test-idp: not built yet");
    std::process::exit(2);
}
