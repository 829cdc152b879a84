fn main() {
    println!("hello from wasmix");
}
