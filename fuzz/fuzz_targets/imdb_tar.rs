#![no_main]
use libfuzzer_sys::fuzz_target;

// Raw tar bytes, and the same through gzip (the archive path).
fuzz_target!(|data: &[u8]| {
    let opts = recurrent_data::imdb::ReadOptions {
        max_total_bytes: 1 << 24,
        ..Default::default()
    };
    let _ = recurrent_data::imdb::read_tar(data, "fuzz", &opts);
    let _ = recurrent_data::imdb::read_tar(flate2_free_gunzip(data), "fuzz", &opts);
});

/// Skip a gzip header if there is one (the tar reader must cope with anything anyway).
fn flate2_free_gunzip(d: &[u8]) -> &[u8] {
    if d.len() > 10 && d[0] == 0x1f && d[1] == 0x8b {
        &d[10..]
    } else {
        d
    }
}
