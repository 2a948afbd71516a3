//! The `rekindle` container image: `images/rekindle/Dockerfile`, built without a
//! daemon by `scripts/build-images.sh` as an OCI image layout. It must hold the
//! static binary alone, run as nobody, with the Dockerfile's labels; the checks
//! are shared with the operator's image (`rekindle_testenv::image_check`).
//! Without a built layout the test fails and says how to build one.

use rekindle_testenv::image_check::check_one_binary_image;

#[test]
#[ignore = "needs scripts/build-images.sh"]
fn the_image_is_the_static_binary_alone_run_as_nobody() {
    let image = check_one_binary_image("rekindle", env!("CARGO_PKG_VERSION"));
    eprintln!(
        "{}: binary {} bytes, compressed layer {} bytes",
        image.reference, image.binary_bytes, image.layer_bytes
    );
}
