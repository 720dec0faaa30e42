fn main() {
    std::process::exit(pullwarden::cli::main());
}
